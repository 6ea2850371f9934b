"""Stats: the kernel's drops, fetched by readers and shown in the summary line."""

from netlog.stats import Stats


class TestKernelDrops:
    """Counted by listener, set from the socket's own count, in the summary when not zero."""

    def test_summary_without_drops_is_unchanged(self):
        assert Stats().summary(3) == "3 records written, 0 dropped, 0 bad frames"

    def test_summary_with_drops_by_listener(self):
        stats = Stats()
        stats.kernel_dropped["log_udp"] = 16360
        stats.kernel_dropped["responder"] = 2
        assert stats.summary(3640) == (
            "3640 records written, 0 dropped, 0 bad frames, "
            "16362 dropped by the kernel (log_udp 16360, responder 2)"
        )

    def test_refresh_runs_every_reader(self):
        stats = Stats()
        counts = iter([5, 9])

        def read() -> None:
            stats.kernel_dropped["log_udp"] = next(counts)

        stats.readers.append(read)
        stats.refresh()
        stats.refresh()
        assert stats.kernel_dropped["log_udp"] == 9  # set, not added
