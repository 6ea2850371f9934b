// echo: the Go echo server of the tutorials, one goroutine per connection
// (the net package's own Listener example: Accept, then `go io.Copy(c, c)`),
// plus a UDP echo loop, as an anchor for netlog's echo and responder.
//
//	echo -host 127.0.0.1 -tcp 0 -udp 0 -ready FILE
//
// Port 0 binds an ephemeral port; FILE gets {"pid", "echo", "responder"}
// once both are bound.  SIGTERM stops it (the default action).
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"os"
	"strconv"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to bind")
	tcpPort := flag.Int("tcp", 0, "TCP echo port (0: ephemeral)")
	udpPort := flag.Int("udp", 0, "UDP echo port (0: ephemeral)")
	ready := flag.String("ready", "", "write the bound ports here as JSON")
	flag.Parse()

	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*tcpPort)))
	if err != nil {
		log.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(*host, strconv.Itoa(*udpPort)))
	if err != nil {
		log.Fatal(err)
	}
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(4 << 20)
		_ = u.SetWriteBuffer(4 << 20)
	}
	if *ready != "" {
		body, _ := json.Marshal(map[string]int{
			"pid":       os.Getpid(),
			"echo":      ln.Addr().(*net.TCPAddr).Port,
			"responder": pc.LocalAddr().(*net.UDPAddr).Port,
		})
		tmp := *ready + ".tmp"
		if err := os.WriteFile(tmp, body, 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *ready); err != nil {
			log.Fatal(err)
		}
	}

	go func() {
		buf := make([]byte, 65536)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], addr)
		}
	}()

	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func(c net.Conn) {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}(conn)
	}
}
