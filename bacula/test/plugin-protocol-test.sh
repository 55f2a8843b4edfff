#!/usr/bin/env bash
# The plugin's own protocol test: openstack-fd.so inside a real Bacula 9.6 File Daemon, driven by
# bacula/test/fake-backend.py (a protocol fixture, not the real `osbackup bacula-backend`).
#   bacula/test/plugin-protocol-test.sh        (root; `make test-plugin` builds the plugin first)
# Starts a lab with scripts/bacula-up in a temp dir (KEEP_LAB=1 leaves it up and prints where), then:
# Full -> catalog files and sizes; Incremental x2 -> delta sequences 1, 2 and SEEN; restore of the
# chain -> the backend receives every part, oldest first, with its delta_seq and the same bytes;
# estimate; cancel mid-backup -> SIGTERM reaches the backend's process group; backend killed
# mid-job, garbage from the backend, a silent backend (timeout=2) -> the job fails with a clear
# error and the FD stays up; no secrets in the job log; no zombie left under the FD.
# Exit 0 when every check passes, 1 otherwise.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
fake=$repo/bacula/test/fake-backend.py
[ "$(id -u)" -eq 0 ] || { echo "plugin-protocol-test: needs root (apt-get, Bacula daemons)" >&2; exit 1; }
[ -f "$repo/.build/bacula/openstack-fd.so" ] || make -C "$repo" plugin >/dev/null || exit 1

lab=$(mktemp -d -t osb-plugin-test.XXXXXX)
log=$lab/fake
mkdir -p "$lab/conf" "$log"
failures=0
pass() { echo "  ok    $*"; }
failed() { echo "  FAIL  $*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else failed "$what"; fi; }
bc() { "$repo/scripts/bconsole" "$lab" 2>&1; }
cleanup() {
  if [ -n "${KEEP_LAB:-}" ]; then echo "lab left up: $lab (scripts/bacula-down $lab)"; else "$repo/scripts/bacula-down" "$lab" >/dev/null; rm -rf "$lab"; fi
}
trap cleanup EXIT

plugin() { # scenario [extra keys]
  printf 'openstack: backend=%s log=%s scenario=%s %s' "$fake" "$log" "$1" "${2:-}"
}
cat >"$lab/conf/extra.conf" <<EOC
FileSet { Name = "os-main";    Include { Plugin = "$(plugin normal 'password=\"s3cr3t pw\" flag')" } }
FileSet { Name = "os-slow";    Include { Plugin = "$(plugin slow)" } }
FileSet { Name = "os-garbage"; Include { Plugin = "$(plugin garbage)" } }
FileSet { Name = "os-hang";    Include { Plugin = "$(plugin hang timeout=2)" } }
Job { Name = "os-main";    JobDefs = OpenStackDefs; FileSet = "os-main" }
Job { Name = "os-slow";    JobDefs = OpenStackDefs; FileSet = "os-slow" }
Job { Name = "os-garbage"; JobDefs = OpenStackDefs; FileSet = "os-garbage" }
Job { Name = "os-hang";    JobDefs = OpenStackDefs; FileSet = "os-hang" }
EOC
echo "== lab: $lab"
"$repo/scripts/bacula-up" "$lab" >/dev/null || { echo "plugin-protocol-test: bacula-up failed" >&2; exit 1; }
fd_pid=$(awk '$1 == "fd" {print $2}' "$lab/pids")
db=$lab/dir/bacula.db

# run_job NAME [level] -> sets JOBID and OUT (the console output, with the job's messages)
run_job() {
  OUT=$(printf 'run job=%s level=%s yes\nwait\nmessages\n' "$1" "${2:-Full}" | bc)
  JOBID=$(sed -n 's/.*Job queued. JobId=\([0-9]*\).*/\1/p' <<<"$OUT" | head -1)
}
job_status() { sqlite3 "$db" "select JobStatus from Job where JobId=$1"; }
fd_alive() { kill -0 "$fd_pid" 2>/dev/null && printf 'status client=lab-fd\n' | bc | grep -q "Plugin: openstack-fd.so"; }
# name|DeltaSeq|size for each File row of a job (size = field 8 of Bacula's base64 LStat)
catalog_files() {
  sqlite3 "$db" "select p.Path||fn.Name, f.DeltaSeq, f.LStat from File f join Path p using(PathId)
                 join Filename fn using(FilenameId) where f.JobId=$1 and f.FileIndex>0 order by 1" |
  python3 -c '
import sys
A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
def b64(s):
    v = 0
    for ch in s: v = v * 64 + A.index(ch)
    return v
for line in sys.stdin:
    name, seq, lstat = line.rstrip("\n").split("|")
    print(f"{name}|{seq}|{b64(lstat.split()[7])}")'
}

fd_count() { ls "/proc/$fd_pid/fd" | wc -l; }
fds_before=$(fd_count)
echo "== plugin loaded"
check "status client lists openstack-fd.so" fd_alive

echo "== estimate"
est=$(printf 'estimate job=os-main listing\n' | bc)
check "estimate lists the 8 files of a Full" grep -q "estimate files=8 " <<<"$est"
check "estimate counts their sizes (406305 bytes)" grep -q "bytes=406,305" <<<"$est"

echo "== Full"
run_job os-main Full; full=$JOBID
check "Full JobId $full: Backup OK" grep -q "Termination: *Backup OK$" <<<"$OUT"
files=$(catalog_files "$full")
echo "$files" | sed 's/^/        /'
check "8 files in the catalog" test "$(wc -l <<<"$files")" -eq 8
check "sizes are the real sizes (.bvmdk 200000, .conf 300, .name 5)" \
  grep -q "root_aaaa.bvmdk|0|200000" <<<"$files"
check ".conf 300 bytes, .name 5 bytes" bash -c 'grep -q "1111.conf|0|300" <<<"$1" && grep -q "web1.name|0|5" <<<"$1"' _ "$files"
check "every Full file has DeltaSeq 0" bash -c '! grep -qv "|0|" <<<"$1"' _ "$files"
check "backend got Level=F and JobEnd:OK" bash -c 'grep -q "JobId='"$full"' Level=F" "$1" && tail -1 "$1" | grep -q "JOBEND JobEnd:OK"' _ "$log/events.log"
check "Params keys reach the backend (a bare word becomes key=yes)" grep -q "keys=backend,flag,log,password,scenario" "$log/events.log"
joblog=$(sqlite3 "$db" "select LogText from Log where JobId=$full")
check "the plugin logs no Params value (only Bacula's own echo of the Plugin line may hold it)" \
  bash -c '! grep "s3cr3t" <<<"$1" | grep -qv "Plugin"' _ "$joblog"

echo "== Incremental 1 and 2 (delta parts, SEEN)"
run_job os-main Incremental; inc1=$JOBID
check "Incremental JobId $inc1: Backup OK" grep -q "Termination: *Backup OK$" <<<"$OUT"
check "CHECK answered from the catalog: found 0" grep -q "root_aaaa.bvmdk CHECK:found 0" "$log/events.log"
run_job os-main Incremental; inc2=$JOBID
check "Incremental JobId $inc2: Backup OK" grep -q "Termination: *Backup OK$" <<<"$OUT"
check "CHECK answered from the catalog: found 1" grep -q "root_aaaa.bvmdk CHECK:found 1" "$log/events.log"
f1=$(catalog_files "$inc1"); f2=$(catalog_files "$inc2")
echo "$f1" | sed "s/^/        job $inc1: /"; echo "$f2" | sed "s/^/        job $inc2: /"
check "delta parts get DeltaSeq 1 then 2" bash -c 'grep -q "root_aaaa.bvmdk|1|70000" <<<"$1" && grep -q "aaaa.bmp|1|" <<<"$1" && grep -q "root_aaaa.bvmdk|2|70000" <<<"$2"' _ "$f1" "$f2"
check "kind=full files keep DeltaSeq 0 in an Incremental" grep -q "1111.conf|0|300" <<<"$f2"
deleted=$(sqlite3 "$db" "select count(*) from File where JobId in ($inc1,$inc2) and FileIndex=0")
check "SEEN files are not marked deleted by Accurate ($deleted deletion records)" test "$deleted" -eq 0

echo "== restore of the chain (where=$lab/restores/r1)"
: >"$log/restored.log"
out=$(printf 'restore client=lab-fd fileset=os-main where=%s/restores/r1 current select all done\nyes\nwait\nmessages\n' "$lab" | bc)
check "Restore OK" grep -q "Termination: *Restore OK$" <<<"$out"
grep RESTORED "$log/events.log" >"$log/restored.log"
sed 's/^/        /; s/ sha=.*//' "$log/restored.log"
seqs=$(grep "root_aaaa.bvmdk" "$log/restored.log" | sed 's/.* seq=\([0-9]*\).*/\1/' | tr '\n' ' ')
check "the .bvmdk chain arrives oldest first: seq 0 1 2 (got: $seqs)" test "$seqs" = "0 1 2 "
check "the volume that failed (SEEN) is restored from the Full" grep -q "root_bbbb.bvmdk size=200000 seq=0" "$log/restored.log"
check "the backend got END after the files" grep -q "RESTORE-END" "$log/events.log"
same=1
while read -r _ path size _ kind sha; do  # every byte sent in a backup comes back to the backend
  grep -q "RESTORED $path .*sha=$sha" "$log/restored.log" || same=0
done < <(grep "^SENT .*root_aaaa.bvmdk" "$log/events.log" | awk '{print "x", $2, $3, "x", $4, $5}')
check "restored bytes equal the bytes backed up (sha256 of each .bvmdk part)" test "$same" -eq 1

echo "== cancel mid-backup"
: >"$log/events.log"
printf 'run job=os-slow yes\n' | bc >/dev/null
for _ in $(seq 1 100); do grep -q "^SLOW" "$log/events.log" && break; sleep 0.2; done
slow_job=$(sqlite3 "$db" "select max(JobId) from Job where Name='os-slow'")
child=$(sed -n 's/^SLOW .*child=\([0-9]*\).*/\1/p' "$log/events.log")
out=$(printf 'cancel jobid=%s\nyes\nwait\nmessages\n' "$slow_job" | bc)
check "the backend received SIGTERM" grep -q "^SIGTERM" "$log/events.log"
# gone, or dead and not yet reaped (a zombie): it may take its reparenting a moment (5 s at most)
child_gone() { [ ! -e "/proc/${child:-999999}" ] || [ "$(awk '{print $3}' "/proc/$child/stat" 2>/dev/null)" = Z ]; }
for _ in $(seq 50); do child_gone && break; sleep 0.1; done
check "its process group is gone (the sleep child too)" child_gone
check "the job is cancelled (JobStatus $(job_status "$slow_job"))" test "$(job_status "$slow_job")" = A
check "the FD is still up" fd_alive

echo "== backend killed mid-job"
: >"$log/events.log"
printf 'run job=os-slow yes\n' | bc >/dev/null
for _ in $(seq 1 100); do grep -q "^SLOW" "$log/events.log" && break; sleep 0.2; done
bpid=$(sed -n 's/^SLOW pid=\([0-9]*\).*/\1/p' "$log/events.log")
kill -9 "$bpid"
t0=$SECONDS
out=$(printf 'wait\nmessages\n' | bc)
check "the death is noticed at once, though the backend's child keeps the pipes open ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 10
kill_job=$(sqlite3 "$db" "select max(JobId) from Job where Name='os-slow'")
check "the job fails (JobStatus $(job_status "$kill_job"))" grep -q "$(job_status "$kill_job")" <<<"f E"
check "the job log names it: $(grep -o 'openstack: the backend exited.*' <<<"$out" | head -1)" \
  grep -q "the backend exited without closing its output.*killed by signal 9" <<<"$out"
check "the FD is still up" fd_alive

echo "== malformed packet and silent backend"
run_job os-garbage
check "garbage: job fails naming the bad byte" grep -q "status character 0x58 is not one of" <<<"$OUT"
check "garbage: JobStatus $(job_status "$JOBID")" grep -q "$(job_status "$JOBID")" <<<"f E"
run_job os-hang
check "timeout=2: job fails naming the timeout" grep -q "no packet from the backend for 2 s" <<<"$OUT"
check "the FD is still up" fd_alive
zombies=$(ps -o stat= --ppid "$fd_pid" | grep -c Z || true)
check "no zombie under the FD ($zombies)" test "$zombies" -eq 0
children=$(ps -o pid= --ppid "$fd_pid" | wc -l)
check "no backend left running under the FD ($children)" test "$children" -eq 0
sleep 1  # the Director's connection of the last status command may still be closing
fds_after=$(fd_count)
check "no file descriptor leaked by the FD ($fds_before open before the jobs, $fds_after after)" test "$fds_after" -le "$fds_before"

echo
if [ "$failures" -eq 0 ]; then echo "plugin-protocol-test: all checks passed"; exit 0; fi
echo "plugin-protocol-test: $failures check(s) failed (KEEP_LAB=1 keeps the lab; logs in LAB/log)"; exit 1
