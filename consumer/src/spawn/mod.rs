//! Starting a child process without copying the consumer: a `clone(CLONE_VM |
//! CLONE_VFORK)` child that sets its rlimits and exec's, and a pidfd to wait on.
//!
//! Why not `std`/`tokio` `Command`: the per-run rlimits must be set between fork and
//! exec, and any `pre_exec` hook makes std fork (copy the consumer's page tables, tear
//! the copy down at exec, then take copy-on-write faults) instead of `posix_spawn`.
//! That was a sixth of the consumer's CPU per run. This is what glibc's `posix_spawn`
//! does, plus `setrlimit`: until it exec's, the child shares the parent's memory (on a
//! small stack of its own), so everything it reads is prepared before the clone and it
//! only makes system calls.
//!
//! The one module of the workspace allowed `unsafe` (the workspace denies it): every block
//! says why it is sound in a `SAFETY` note.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// Sends `signal` to every process in group `pgid`; a group that is already gone is fine.
pub fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid only sends a signal; no memory is touched.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// True while any process of group `pgid` exists.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// A program, its arguments, working directory and environment. The environment starts
/// empty: a child sees only what is set here.
#[derive(Debug, Clone)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env: BTreeMap<OsString, OsString>,
    cwd: Option<PathBuf>,
}

impl Command {
    /// Runs `program`: a path, or a name looked up on PATH (the child's, else ours).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
        }
    }

    /// Appends one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets a variable; a later value for the same name wins.
    pub fn env(&mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .insert(name.as_ref().to_owned(), value.as_ref().to_owned());
        self
    }

    /// Copies each of `names` that is set in the consumer's own environment.
    pub fn env_from_consumer(&mut self, names: &[&str]) -> &mut Self {
        for name in names {
            if let Some(value) = std::env::var_os(name) {
                self.env(name, value);
            }
        }
        self
    }

    /// The working directory of the child.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The value `name` will have in the child, if set.
    pub fn get_env(&self, name: impl AsRef<OsStr>) -> Option<&OsStr> {
        self.env.get(name.as_ref()).map(OsString::as_os_str)
    }

    /// Every variable the child will have, by name.
    pub fn env_vars(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.env.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// The program as given.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The path to exec: `program` itself when it has a slash, else the first executable
    /// file of that name on PATH.
    fn resolve(&self) -> io::Result<PathBuf> {
        if self.program.as_bytes().contains(&b'/') {
            return Ok(PathBuf::from(&self.program));
        }
        let path = self
            .env
            .get(OsStr::new("PATH"))
            .cloned()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        find_on_path(&self.program, &path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} not found on PATH ({})",
                    self.program.to_string_lossy(),
                    path.to_string_lossy()
                ),
            )
        })
    }
}

/// The first executable file named `program` in the directories of `path`.
fn find_on_path(program: &OsStr, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// `program` as a path to exec: itself when it has a slash, else its place on the
/// consumer's PATH; None when that is no executable file. For programs named in config,
/// resolved once at start instead of on every run.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    find_on_path(OsStr::new(program), &std::env::var_os("PATH")?)
}

fn is_executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) only reads the NUL-terminated path.
    path.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

/// One rlimit to set in the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_*`.
    pub resource: libc::__rlimit_resource_t,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// A started child: the leader of its own process group, stdin from /dev/null, stdout
/// and stderr piped. Dropping it before it was waited for kills it and reaps it.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
    /// The read end of the child's stdout.
    pub stdout: Option<pipe::Receiver>,
    /// The read end of the child's stderr.
    pub stderr: Option<pipe::Receiver>,
}

impl Child {
    /// The child's pid, which is also its process group id.
    pub fn id(&self) -> i32 {
        self.pid
    }

    /// Waits for the child to exit. Cancel-safe: dropping the future loses nothing.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            let pidfd = self.pidfd.as_ref().expect("an unreaped child has a pidfd");
            // A pidfd turns readable when the process exits.
            let mut ready = pidfd.readable().await?;
            ready.clear_ready();
        }
    }

    /// The exit status if the child has exited (reaping it), else None.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = reap(self.pid, libc::WNOHANG)?;
        }
        Ok(self.status)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        // SAFETY: kill(2) only sends a signal to our own unreaped child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
        if let Ok(Some(_)) = reap(self.pid, libc::WNOHANG) {
            return;
        }
        // Reap it once it is gone, so no zombie stays behind.
        let pid = self.pid;
        let pidfd = self.pidfd.take();
        match (tokio::runtime::Handle::try_current(), pidfd) {
            (Ok(runtime), Some(pidfd)) => {
                runtime.spawn(async move {
                    let _ = pidfd.readable().await;
                    let _ = reap(pid, 0);
                });
            }
            _ => {
                std::thread::spawn(move || reap(pid, 0));
            }
        }
    }
}

/// waitpid(2) on our own child; None when `flags` has WNOHANG and it still runs.
fn reap(pid: i32, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) writes only the status int we pass.
        let got = unsafe { libc::waitpid(pid, &mut status, flags) };
        if got == pid {
            return Ok(Some(ExitStatus::from_raw(status)));
        }
        if got == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Which step of the child's set-up failed, for the error message.
#[derive(Clone, Copy)]
#[repr(i32)]
enum Step {
    ProcessGroup = 1,
    Rlimit = 2,
    Stdio = 3,
    Chdir = 4,
    Exec = 5,
}

impl Step {
    fn from_code(code: i32) -> Option<Step> {
        Some(match code {
            1 => Step::ProcessGroup,
            2 => Step::Rlimit,
            3 => Step::Stdio,
            4 => Step::Chdir,
            5 => Step::Exec,
            _ => return None,
        })
    }
}

/// Everything the child reads, prepared by the parent; the child writes only `errno`
/// and `step`, and only on failure.
struct Plan {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    rlimits: *const Rlimit,
    rlimit_count: usize,
    stdio: [RawFd; 3],
    last_signal: libc::c_int,
    errno: AtomicI32,
    step: AtomicI32,
}

/// The child's stack. It only makes system calls through libc, so 64 KiB is ample.
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// Starts `command` with `rlimits` applied before exec.
pub fn spawn(command: &Command, rlimits: &[Rlimit]) -> io::Result<Child> {
    let path = command.resolve()?;
    let path_c = c_string(path.as_os_str(), "program path")?;
    let mut argv_c = vec![c_string(&command.program, "program")?];
    for arg in &command.args {
        argv_c.push(c_string(arg, "argument")?);
    }
    let mut envp_c = Vec::with_capacity(command.env.len());
    for (name, value) in &command.env {
        let mut pair = name.clone();
        pair.push("=");
        pair.push(value);
        envp_c.push(c_string(&pair, "environment variable")?);
    }
    let cwd_c = match &command.cwd {
        Some(dir) => Some(c_string(dir.as_os_str(), "working directory")?),
        None => None,
    };
    let argv = null_terminated(&argv_c);
    let envp = null_terminated(&envp_c);

    let stdin = open_dev_null()?;
    let (stdout_read, stdout_write) = pipe_pair()?;
    let (stderr_read, stderr_write) = pipe_pair()?;
    let plan = Plan {
        path: path_c.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        rlimits: rlimits.as_ptr(),
        rlimit_count: rlimits.len(),
        stdio: [
            stdin.as_raw_fd(),
            stdout_write.as_raw_fd(),
            stderr_write.as_raw_fd(),
        ],
        last_signal: libc::SIGRTMAX(),
        errno: AtomicI32::new(0),
        step: AtomicI32::new(0),
    };
    let mut stack: Vec<u128> = Vec::with_capacity(CHILD_STACK_BYTES / 16);
    // The stack grows down; u128 keeps its top 16-byte aligned as the ABI wants.
    let stack_top = stack.as_mut_ptr().wrapping_add(stack.capacity());

    let mut pidfd: libc::c_int = -1;
    let pid = {
        let _blocked = BlockedSignals::all()?;
        // SAFETY: the child runs `child_main` on `stack` while this thread is suspended
        // (CLONE_VFORK) until it exec's or exits; `plan`, the strings and the stack
        // outlive that. CLONE_PIDFD stores the pidfd in the parent_tid argument.
        unsafe {
            libc::clone(
                child_main,
                stack_top.cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
                (&plan as *const Plan).cast_mut().cast(),
                &mut pidfd as *mut libc::c_int,
            )
        }
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pidfd < 0 {
        // Kernels before 5.2 ignore CLONE_PIDFD: the child runs, but cannot be waited on
        // here. Stop it rather than leave it unwatched.
        // SAFETY: kill(2) on our own unreaped child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let _ = reap(pid, 0);
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel gives no pidfd for a child (CLONE_PIDFD); the consumer needs Linux 5.3 or later",
        ));
    }
    // SAFETY: clone(2) with CLONE_PIDFD gave us this descriptor, owned by no one else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop((stdin, stdout_write, stderr_write));
    drop(stack);

    let step = plan.step.load(Ordering::Acquire);
    if let Some(step) = Step::from_code(step) {
        // The child has exited already (it cannot exec after failing): reap it now.
        let _ = reap(pid, 0);
        return Err(setup_error(
            step,
            plan.errno.load(Ordering::Acquire),
            &path,
            command.cwd.as_deref(),
        ));
    }
    // SAFETY: the AsyncFd owns the pidfd, so it stays open and the same while registered.
    let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(io::Error::from)
        .and_then(|pidfd| Ok((pidfd, pipe::Receiver::from_owned_fd(stdout_read)?)))
        .and_then(|(pidfd, out)| Ok((pidfd, out, pipe::Receiver::from_owned_fd(stderr_read)?)));
    match registered {
        Ok((pidfd, stdout, stderr)) => Ok(Child {
            pid,
            pidfd: Some(pidfd),
            status: None,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }),
        Err(e) => {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let _ = reap(pid, 0);
            Err(e)
        }
    }
}

fn setup_error(step: Step, errno: i32, path: &Path, cwd: Option<&Path>) -> io::Error {
    let os = io::Error::from_raw_os_error(errno);
    let context = match step {
        // As std's spawn reports it, so messages read the same as before.
        Step::Exec => return os,
        Step::ProcessGroup => "cannot start a process group".to_string(),
        Step::Rlimit => "cannot set the run's resource limits".to_string(),
        Step::Stdio => "cannot connect stdin/stdout/stderr".to_string(),
        Step::Chdir => format!(
            "cannot enter the working directory {}",
            cwd.unwrap_or(Path::new("?")).display()
        ),
    };
    io::Error::new(os.kind(), format!("{context} for {}: {os}", path.display()))
}

/// The child: only system calls, on memory the parent prepared.
extern "C" fn child_main(plan: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `plan` points at the parent's `Plan`, alive while the parent is suspended;
    // every call below is a plain system call wrapper (async-signal-safe, no allocation).
    unsafe {
        let plan = &*(plan as *const Plan);
        // The parent's handlers must not run here (they would run on its memory); ignored
        // signals stay ignored, except SIGPIPE, which Rust ignores for itself.
        for signal in 1..=plan.last_signal {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let custom = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
            let ignored_pipe = signal == libc::SIGPIPE && old.sa_sigaction == libc::SIG_IGN;
            if custom || ignored_pipe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(plan, Step::ProcessGroup);
        }
        for i in 0..plan.rlimit_count {
            let limit = &*plan.rlimits.add(i);
            let value = libc::rlimit {
                rlim_cur: limit.soft,
                rlim_max: limit.hard,
            };
            if libc::setrlimit(limit.resource, &value) != 0 {
                fail(plan, Step::Rlimit);
            }
        }
        // The parent's descriptors are all above 2 and close-on-exec; dup2 clears that
        // flag on the copies.
        for (target, &fd) in plan.stdio.iter().enumerate() {
            if libc::dup2(fd, target as libc::c_int) < 0 {
                fail(plan, Step::Stdio);
            }
        }
        if !plan.cwd.is_null() && libc::chdir(plan.cwd) != 0 {
            fail(plan, Step::Chdir);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(plan.path, plan.argv, plan.envp);
        fail(plan, Step::Exec)
    }
}

/// Records the failed step and errno for the parent, then exits the child.
unsafe fn fail(plan: &Plan, step: Step) -> ! {
    // SAFETY: errno is this (borrowed) thread's; _exit(2) ends the child only.
    unsafe {
        plan.errno
            .store(*libc::__errno_location(), Ordering::Release);
        plan.step.store(step as i32, Ordering::Release);
        libc::_exit(127)
    }
}

/// All signals blocked on this thread until dropped, so none is handled by the child
/// between the clone and its reset of the handlers.
struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    fn all() -> io::Result<Self> {
        // SAFETY: sigset_t is plain data; pthread_sigmask only changes this thread's mask.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let mut old: libc::sigset_t = std::mem::zeroed();
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(BlockedSignals(old))
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `all`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

fn c_string(s: &OsStr, what: &str) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte: {}", s.to_string_lossy()),
        )
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Takes ownership of a fresh descriptor, moved above 0–2 if it landed there (when the
/// consumer runs with a standard stream closed), so the child's dup2 onto 0–2 cannot
/// overwrite another of its sources.
fn owned_above_stdio(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: `fd` was just returned to us by the kernel and is owned by no one else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    if fd > 2 {
        return Ok(owned);
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor ≥ 3; the low one closes on drop.
    let moved = unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just returned this new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let read = owned_above_stdio(fds[0]);
    let write = owned_above_stdio(fds[1]);
    Ok((read?, write?))
}

fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: open(2) of a constant NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    owned_above_stdio(fd)
}

#[cfg(test)]
mod tests;
