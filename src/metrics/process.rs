//! The standard `process_*` metrics, read from `/proc` at scrape time
//! (Linux; elsewhere they are left out). The names and meanings are those of
//! Prometheus' own client libraries, so existing dashboards work unchanged.

/// One reading of the process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Process {
    /// Resident set size.
    pub(super) resident_bytes: u64,
    /// Virtual memory size.
    pub(super) virtual_bytes: u64,
    /// User plus system CPU time.
    pub(super) cpu_seconds: f64,
    /// Start time, seconds since the Unix epoch.
    pub(super) start_time_seconds: f64,
    /// Open file descriptors.
    pub(super) open_fds: u64,
    /// The soft open-file limit (`None`: unlimited).
    pub(super) max_fds: Option<u64>,
}

/// Reads the process, or `None` off Linux or when `/proc` is not mounted.
pub(super) fn read() -> Option<Process> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        parse(
            &stat,
            &boot,
            rustix::param::clock_ticks_per_second(),
            rustix::param::page_size() as u64,
        )
        .map(|p| Process {
            open_fds,
            max_fds,
            ..p
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The figures of `/proc/self/stat` and `/proc/stat`'s `btime`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse(stat: &str, boot: &str, ticks: u64, page: u64) -> Option<Process> {
    // `pid (comm) state …`: comm may hold spaces and parentheses, so fields
    // are counted from the last `)`; field 3 (state) is index 0 after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (utime, stime, start) = (field(14)?, field(15)?, field(22)?);
    let (vsize, rss) = (field(23)?, field(24)?);
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = ticks.max(1) as f64;
    #[allow(clippy::cast_precision_loss)] // tick counts stay far below 2^52
    Some(Process {
        resident_bytes: rss.saturating_mul(page),
        virtual_bytes: vsize,
        cpu_seconds: (utime + stime) as f64 / ticks,
        start_time_seconds: btime as f64 + start as f64 / ticks,
        open_fds: 0,
        max_fds: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as the kernel writes it.
        let stat = "4242 (war den) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 50 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let p = parse(stat, boot, 100, 4096).expect("parses");
        assert_eq!(p.resident_bytes, 2560 * 4096);
        assert_eq!(p.virtual_bytes, 104_857_600);
        assert!((p.cpu_seconds - 3.0).abs() < 1e-9);
        assert!((p.start_time_seconds - 1_700_000_123.45).abs() < 1e-6);
        assert_eq!(parse("garbage", boot, 100, 4096), None);
        assert_eq!(parse(stat, "no boot time", 100, 4096), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_as_alive() {
        let p = read().expect("/proc is mounted");
        assert!(p.resident_bytes > 1 << 20, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!(
            p.start_time_seconds > now - 86_400.0 && p.start_time_seconds <= now + 1.0,
            "{p:?}"
        );
    }
}
