//! What the generator reads from the operating system: a process's CPU seconds and resident
//! memory from `/proc/<pid>`, the load average, the broker's pid (the process listening on the
//! broker's port), and its own open-file limit, raised to the hard limit so that 10,000 client
//! connections fit.

use std::fs;

/// CPU time (user + system) of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// CPU seconds of every process in `pids` together (the nodes of a multi-node run).
pub fn cpu_seconds_of(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

/// `VmRSS` and `VmHWM` of every process in `pids`, summed.
pub fn rss_kb_of(pids: &[u32]) -> Option<(u64, u64)> {
    pids.iter().map(|p| rss_kb(*p)).try_fold((0, 0), |(r, h), x| x.map(|(xr, xh)| (r + xr, h + xh)))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// `VmRSS` and `VmHWM` (peak) of `pid` in KiB.
pub fn rss_kb(pid: u32) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Memory of every TCP socket buffer of the machine in KiB (`/proc/net/sockstat`, "TCP: ...
/// mem" in pages): kernel memory, which no process's RSS shows.
pub fn tcp_mem_kb() -> Option<u64> {
    let stat = fs::read_to_string("/proc/net/sockstat").ok()?;
    let tcp = stat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut fields = tcp.split_whitespace();
    fields.find(|f| *f == "mem")?;
    let pages: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the running system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).unwrap_or(4096) / 1024)
}

pub fn load_avg_1m() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// The pid of the process with a listening TCP socket on `port` (IPv4 or IPv6), found through
/// `/proc/net/tcp*` (socket inode) and `/proc/*/fd` (which process holds it).
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|path| listening_inode(path, port))?;
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target) {
                return Some(pid);
            }
        }
    }
    None
}

fn listening_inode(path: &str, port: u16) -> Option<String> {
    let table = fs::read_to_string(path).ok()?;
    let want = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // local_address, rem_address, st (0A = LISTEN), ..., inode at index 9.
        let listening = f.get(3) == Some(&"0A");
        (listening && f.get(1)?.ends_with(&want)).then(|| f.get(9).map(|s| s.to_string()))?
    })
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit; answers the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write/read the plain struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        let (rss, hwm) = rss_kb(pid).expect("status");
        assert!(rss > 0 && hwm >= rss);
        assert!(tcp_mem_kb().is_some());
    }

    #[test]
    fn the_listener_of_a_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
    }
}
