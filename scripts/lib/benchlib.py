"""Shared by the scripts/bench-* benchmarks (imported, not run).

Timed steps that end with `sync`, peak RSS and CPU from wait4, the machine's limits measured in the same
run (durable write rate by `dd conv=fsync`, SHA-256 on two cores by `openssl speed -multi`), a description
of the machine (CPU model, SHA extensions, load), the seeded images of scripts/gen-disk-image.py, Debian
packages installed on demand, the emulator as a process, and medians.
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1_000_000
MIB = 1 << 20
GIB = 1 << 30


class StepFailed(Exception):
    """A benchmarked command failed: names the command, its exit status and the end of its output."""

    def __init__(self, command, status, stderr):
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        super().__init__("%s exited with status %s:\n%s" % (" ".join(command), status, tail))


class Measured:
    """One timed step: wall seconds (including the final sync), peak RSS and CPU seconds of the process."""

    def __init__(self, seconds, rss, cpu, stdout, stderr):
        self.seconds = seconds
        self.rss = rss
        self.cpu = cpu
        self.stdout = stdout
        self.stderr = stderr


def run_measured(command, env=None, cwd=None, sync=True):
    """Runs `command` (a list) and then `sync` when asked; returns a Measured. The wall time runs from the
    fork to the end of the sync, so a step pays for putting its own bytes on disk. Peak RSS and CPU are
    the process's (and its waited-for children's) from wait4. Raises StepFailed on a non-zero exit."""
    started = time.monotonic()
    read_end, write_end = os.pipe()
    error_read, error_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(write_end, 1)
            os.dup2(error_write, 2)
            os.close(read_end)
            os.close(error_read)
            if cwd:
                os.chdir(cwd)
            os.execvpe(command[0], command, env if env is not None else os.environ)
        except OSError as error:
            os.write(2, ("cannot run %s: %s\n" % (command[0], error)).encode())
        os._exit(127)
    os.close(write_end)
    os.close(error_write)
    # Drain both pipes at once (a chatty stderr must not block the child while stdout is read).
    chunks = {read_end: [], error_read: []}
    import selectors
    selector = selectors.DefaultSelector()
    for descriptor in chunks:
        selector.register(descriptor, selectors.EVENT_READ)
    open_count = 2
    while open_count:
        for key, _ in selector.select():
            data = os.read(key.fd, 1 << 16)
            if data:
                chunks[key.fd].append(data)
            else:
                selector.unregister(key.fd)
                os.close(key.fd)
                open_count -= 1
    _, status, usage = os.wait4(pid, 0)
    stdout = b"".join(chunks[read_end]).decode(errors="replace")
    stderr = b"".join(chunks[error_read]).decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise StepFailed(command, code, stderr + stdout)
    if sync:
        os.sync()
    seconds = time.monotonic() - started
    return Measured(seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, stdout, stderr)


def warm(path):
    """Reads a file once, so that a step finds it in the page cache ("warm")."""
    with open(path, "rb", buffering=0) as source:
        buffer = bytearray(16 << 20)
        while source.readinto(buffer):
            pass


def folder_bytes(path):
    """Apparent size of every file under `path` (a repository's stored bytes)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names
               if not os.path.islink(os.path.join(root, name)))


def allocated_bytes(path):
    """Bytes a file occupies on disk (holes excluded): what writing it put on the disk."""
    return os.stat(path).st_blocks * 512


def median(values):
    return statistics.median(values) if values else None


def durable_write_rate(directory, size):
    """The disk's durable write rate in `directory`, bytes/s: `dd if=/dev/zero bs=4M conv=fsync` of `size`
    new bytes (dd's own figure, which includes the fsync)."""
    path = os.path.join(directory, "dd-write-test.tmp")
    count = max(1, size // (4 * MIB))
    try:
        result = subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=4M", "count=%d" % count, "conv=fsync"],
                                capture_output=True, text=True, check=True)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    match = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", result.stderr, re.MULTILINE)
    if not match:
        raise RuntimeError("dd printed no rate: %s" % result.stderr.strip())
    return int(match.group(1)) / float(match.group(2))


def sha256_rate(cores=2, seconds=3):
    """OpenSSL's SHA-256 rate on 64 KiB blocks with `cores` processes at once (`openssl speed -multi`),
    bytes/s over all of them; None when openssl is missing."""
    command = ["openssl", "speed", "-seconds", str(seconds), "-bytes", "65536", "-evp", "sha256"]
    if cores > 1:
        command[2:2] = ["-multi", str(cores)]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    numbers = re.findall(r"^sha256\s+([\d.]+)k", output, re.MULTILINE)
    return float(numbers[-1]) * 1000 if numbers else None


def load_average():
    """`uptime`'s three load averages, as text."""
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def machine_description():
    """CPU model, cores, SHA extensions, memory and kernel, one line."""
    model = "?"
    flags = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    sha = "sha_ni" if re.search(r"\bsha_ni\b", flags) else "no sha_ni"
    with open("/proc/meminfo") as meminfo:
        memory = int(meminfo.readline().split()[1]) * 1024
    hypervisor = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        family = re.search(r"^CPU family:\s*(\S+)", lscpu, re.MULTILINE)
        cpu_model = re.search(r"^Model:\s*(\S+)", lscpu, re.MULTILINE)
        vendor = re.search(r"^Hypervisor vendor:\s*(\S+)", lscpu, re.MULTILINE)
        if family and cpu_model:
            model += " (family %s, model %s)" % (family.group(1), cpu_model.group(1))
        if vendor:
            hypervisor = ", under %s" % vendor.group(1)
    except OSError:
        pass
    return "%s, %d cores%s, %s (grep -o sha_ni /proc/cpuinfo), %.0f GiB RAM, Linux %s" % (
        model, os.cpu_count(), hypervisor, sha, memory / GIB, os.uname().release)


def ensure_packages(packages, install=True):
    """Installs the Debian packages that are missing (root; apt-get waits up to 600 s for the dpkg lock).
    Returns the packages still missing afterwards, each with the reason, so the caller skips what needs them."""
    missing = [p for p in packages if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout.find("install ok installed") < 0]
    if not missing:
        return {}
    if not install:
        return {p: "not installed (--no-install)" for p in missing}
    if os.geteuid() != 0:
        return {p: "not installed, and installing needs root: apt-get install %s" % p for p in missing}
    print("installing Debian packages: %s" % " ".join(missing), file=sys.stderr)
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends"]
    result = subprocess.run(command + missing, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"], env=environment, capture_output=True)
        result = subprocess.run(command + missing, env=environment, capture_output=True, text=True)
    still = {}
    for p in missing:
        if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout.find("install ok installed") < 0:
            still[p] = "apt-get install failed: %s" % (result.stderr.strip().splitlines() or ["?"])[-1]
    return still


def seeded_images(directory, size):
    """The seeded day-1 image of `size` and its day 2 (1% of the 64 KiB blocks and one 32 MiB region
    rewritten), as scripts/bench-image makes them; made once and kept in `directory`."""
    day1 = os.path.join(directory, "day1-%s.img" % size)
    day2 = os.path.join(directory, "day2-%s.img" % size)
    generator = os.path.join(HERE, "gen-disk-image.py")
    if not os.path.exists(day1):
        print("generating %s (seed 1)..." % day1, file=sys.stderr)
        subprocess.run([sys.executable, generator, "make", day1 + ".tmp", "--size", size, "--seed", "1"], check=True)
        os.rename(day1 + ".tmp", day1)
    if not os.path.exists(day2):
        subprocess.run(["cp", "--sparse=always", day1, day2 + ".tmp"], check=True)
        region = "32M" if os.path.getsize(day1) >= 256 * MIB else "1M"
        subprocess.run([sys.executable, generator, "mutate", day2 + ".tmp", "--seed", "2", "--percent", "1",
                        "--region", region, "--block", "64K"], check=True, capture_output=True)
        os.rename(day2 + ".tmp", day2)
    return day1, day2


def files_equal(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def tool_version(command):
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return (result.stdout + result.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def free_bytes(directory):
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def check_free_space(directory, needed, what):
    """Stops with a message naming the folder, the space needed and what to do, when it lacks room."""
    available = free_bytes(directory)
    if available < needed:
        sys.exit("%s needs about %.1f GB free in %s; it has %.1f GB: free some space or give --dir on a larger disk"
                 % (what, needed / 1e9, directory, available / 1e9))


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


class ProcessCPU:
    """CPU seconds (user + system) of running processes, read from /proc/<pid>/stat, with their threads."""

    ticks = os.sysconf("SC_CLK_TCK")

    @classmethod
    def seconds(cls, pid):
        try:
            with open("/proc/%d/stat" % pid) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            # after the command name: field 14 (utime) and 15 (stime) of proc(5) are the 12th and 13th
            return (int(fields[11]) + int(fields[12])) / cls.ticks
        except (OSError, IndexError, ValueError):
            return None

    @classmethod
    def children_seconds(cls, pid):
        """CPU seconds of the process's children that it has waited for (cutime + cstime): a daemon's
        short-lived helpers, such as the FD plugin's backend, once they have been reaped."""
        try:
            with open("/proc/%d/stat" % pid) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[13]) + int(fields[14])) / cls.ticks
        except (OSError, IndexError, ValueError):
            return None


class CopyOnWriteFolder:
    """A folder on an XFS filesystem with reflink (a sparse file under `directory`, mounted through a loop
    device), so that `cp --reflink=auto` there is a copy-on-write clone: the emulator's snapshots and volumes
    made from them then cost what they cost on Ceph RBD or LVM thin (almost nothing), not a copy of the
    volume. Root only; installs xfsprogs when missing. `path` is None, with `reason`, when it cannot be made.
    Use as a context manager: the filesystem is unmounted (and its file removed) on the way out."""

    def __init__(self, directory, size):
        self.image = os.path.join(directory, "cow-xfs.img")
        self.mountpoint = os.path.join(directory, "cow")
        self.size = size
        self.path = None
        self.reason = None

    def __enter__(self):
        if os.geteuid() != 0:
            self.reason = "needs root (mount)"
            return self
        missing = ensure_packages(["xfsprogs"])
        if missing:
            self.reason = "xfsprogs: %s" % missing["xfsprogs"]
            return self
        os.makedirs(self.mountpoint, exist_ok=True)
        with open(self.image, "wb") as image:
            image.truncate(self.size)
        steps = [["mkfs.xfs", "-q", "-f", "-m", "reflink=1", self.image], ["mount", "-o", "loop", self.image, self.mountpoint]]
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True)
            if result.returncode != 0:
                self.reason = "%s failed: %s" % (" ".join(step[:2]), result.stderr.strip())
                self.__exit__()
                return self
        self.path = self.mountpoint
        return self

    def __exit__(self, *_):
        if self.path:
            for _ in range(50):
                if subprocess.run(["umount", self.mountpoint], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)  # a loop device of the emulator may still be going away
            self.path = None
        if os.path.exists(self.image):
            os.unlink(self.image)
        return False


class EmulatorProcess:
    """`osbackup emulator serve` seeded with `seed` (YAML text) in `work`, its state under `state_root`;
    `stop()` sends SIGTERM (it detaches its loop devices). Exits the script when it does not start."""

    def __init__(self, binary, work, seed, transition_delay, loop_devices, state_root):
        self.binary = binary
        self.work = work
        self.state = os.path.join(state_root, "cloud")
        self.clouds = os.path.join(work, "clouds.yaml")
        seed_path = os.path.join(work, "seed.yaml")
        with open(seed_path, "w") as out:
            out.write(seed)
        command = [binary, "emulator", "serve", "--state", self.state, "--seed", seed_path, "--clouds-yaml", self.clouds,
                   "--transition-delay", str(transition_delay), "--size-unit", "mib", "--log-level", "warning"]
        if loop_devices:
            command.append("--loop-devices")
        self.out = open(os.path.join(work, "serve.out"), "w")
        self.err = open(os.path.join(work, "serve.err"), "w")
        self.process = subprocess.Popen(command, stdout=self.out, stderr=self.err)
        deadline = time.monotonic() + 600  # seeding writes every volume's content
        while time.monotonic() < deadline:
            if os.path.getsize(os.path.join(work, "serve.out")) > 0:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        with open(os.path.join(work, "serve.err")) as err:
            sys.exit("the emulator did not start (see %s/serve.err):\n%s" % (work, err.read()[-3000:]))

    def inventory(self):
        """`osbackup emulator inventory --json`, parsed."""
        return json.loads(subprocess.run(
            [self.binary, "emulator", "inventory", "--state", self.state, "--json"], capture_output=True, text=True, check=True).stdout)

    def cpu(self):
        """CPU seconds of the emulator and of the helpers it has reaped (cp of snapshots and volumes, losetup)."""
        pid = self.process.pid
        return (ProcessCPU.seconds(pid) or 0.0) + (ProcessCPU.children_seconds(pid) or 0.0)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.out.close()
        self.err.close()
