//! Pinning the calling thread to one CPU for a run: per-CPU state (the
//! load balancer's connection table, counters read per CPU) is updated on
//! the CPU that runs the program, which for a test run is the caller's and
//! for a live run is the one whose softirq processes the injected frame —
//! the injecting thread's.

use std::io;

/// The calling thread pinned to one CPU until drop, which restores the
/// affinity it had.
pub struct CpuPin {
    saved: libc::cpu_set_t,
    /// The CPU pinned to.
    pub cpu: usize,
}

impl CpuPin {
    /// Pins to the CPU the thread runs on (or the first it may run on).
    pub fn here() -> io::Result<Self> {
        Self::pin(true, None)
    }

    /// Pins to the first CPU the thread may run on: where per-CPU values
    /// land is then known in advance (`after.maps` `per_cpu:`).
    pub fn first() -> io::Result<Self> {
        Self::pin(false, None)
    }

    /// Pins to `cpu`, which the thread must be allowed to run on.
    pub fn to(cpu: usize) -> io::Result<Self> {
        Self::pin(false, Some(cpu))
    }

    /// The CPUs the calling thread may run on, in order.
    pub fn allowed() -> io::Result<Vec<usize>> {
        // SAFETY: cpu_set_t is plain data; the libc call writes within it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((0..libc::CPU_SETSIZE as usize)
                .filter(|c| libc::CPU_ISSET(*c, &set))
                .collect())
        }
    }

    fn pin(stay: bool, wanted: Option<usize>) -> io::Result<Self> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: cpu_set_t is plain data; the libc calls write within it.
        unsafe {
            let mut saved: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size, &mut saved) != 0 {
                return Err(io::Error::last_os_error());
            }
            let allowed =
                |cpu: usize| cpu < libc::CPU_SETSIZE as usize && libc::CPU_ISSET(cpu, &saved);
            if let Some(cpu) = wanted.filter(|c| !allowed(*c)) {
                return Err(io::Error::other(format!(
                    "the thread may not run on CPU {cpu}"
                )));
            }
            let current = usize::try_from(libc::sched_getcpu()).ok().filter(|_| stay);
            let cpu = wanted
                .or(current)
                .filter(|c| allowed(*c))
                .or_else(|| (0..libc::CPU_SETSIZE as usize).find(|c| allowed(*c)))
                .ok_or_else(|| io::Error::other("the thread may run on no CPU"))?;
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            if libc::sched_setaffinity(0, size, &one) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self { saved, cpu })
        }
    }
}

impl Drop for CpuPin {
    fn drop(&mut self) {
        // SAFETY: restores the set read in `here`.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.saved);
        }
    }
}
