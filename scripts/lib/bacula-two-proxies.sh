# Sourced by scripts/test-bacula, whose lab is up (scripts/lib/bacula-cloud.sh): two File Daemons, one per
# proxy, against the lab's one Director and Storage (the scale-out layout of docs/operations.md), on a
# second emulator seeded with samples/emulator/two-proxies.yaml (proxy-1 saves app-1, proxy-2 saves app-2).
#   test_two_proxies
# FD 1 is the lab's lab-fd (Job "twoproxies-1", added to extra.conf), FD 2 a second bacula-fd (lab-fd2 on
# $BACULA_FD2_PORT, default $BACULA_FD_PORT + 2, Job "openstack-backup-2"), each with its own state.
#  1. Both Full jobs started at once run at the same time, end T, save only their own server, and restore
#     byte for byte; the cloud is left clean.
#  2. FD 2's Incremental is held mid-read (its backend stopped with SIGSTOP: live whatever the machine's
#     load) while FD 1's backend is killed mid-read; `osbackup cleanup` with FD 1's cloud entry and state
#     removes FD 1's leftovers and leaves FD 2's snapshot, volume and attachment as they were; FD 2's job
#     then ends T and the cloud is clean.

two_emulator=''
two_stop() {
  if [ -n "$two_emulator" ]; then kill -TERM "$two_emulator" 2>/dev/null || true; wait "$two_emulator" 2>/dev/null || true; fi
}
two_inventory() { "$osbackup" emulator inventory --state "$work/cloud2" --json; }
two_id_of() { # servers|volumes NAME
  two_inventory | /usr/bin/python3 -c 'import json, sys; print(next(x["id"] for x in json.load(sys.stdin)[sys.argv[1]] if x["name"] == sys.argv[2]))' "$1" "$2"
}
# osbackup's temporary resources tagged osbackup_proxy=$1, one a line: kind, id, status, attached to.
two_tagged() {
  two_inventory | /usr/bin/python3 -c '
import json, sys
inventory, proxy = json.load(sys.stdin), sys.argv[1]
servers = {a["volumeID"]: a["serverName"] for a in inventory["attachments"]}
for kind in ("snapshots", "volumes"):
    for x in inventory[kind]:
        if x["metadata"].get("osbackup_proxy") == proxy:
            print(kind[:-1], x["id"], x["status"], servers.get(x["id"], "-"))' "$1"
}
# Fails unless the second cloud holds no snapshot, no osbackup-tagged volume, nothing of osbackup on a proxy.
two_expect_clean() {
  two_inventory | /usr/bin/python3 -c '
import json, sys
inventory = json.load(sys.stdin)
assert not inventory["snapshots"], inventory["snapshots"]
temporary = [v for v in inventory["volumes"] if "osbackup_job" in v["metadata"]]
assert not temporary, temporary
proxies = {s["name"] for s in inventory["servers"] if s["isProxy"]}
assert proxies == {"proxy-1", "proxy-2"}, proxies
attached = [a for a in inventory["attachments"] if a["serverName"] in proxies and a["device"] != "/dev/vda"]
assert not attached, attached
print("    clean: 0 snapshots, no temporary volume, nothing of osbackup on proxy-1 or proxy-2")'
}
# The catalog, waiting up to 10 s while the Director writes (a bare sqlite3 fails at once: "database is locked").
two_sql() { sqlite3 -cmd '.timeout 10000' "$db" "$1"; }
two_status() { two_sql "select JobStatus from Job where JobId=$1"; }
two_files() { two_sql "select p.Path||fn.Name from File f join Path p using(PathId) join Filename fn using(FilenameId) where f.JobId=$1 and f.FileIndex>0"; }
two_start_job() { # JOB LEVEL -> prints the JobId
  printf 'run job=%s level=%s yes\n' "$1" "$2" | bc | sed -n 's/.*Job queued. JobId=\([0-9]*\).*/\1/p' | head -1
}
two_wait_end() { # JOBID: until the job has ended (up to 10 minutes)
  for _ in $(seq 3000); do case "$(two_status "$1")" in T | E | e | f | A | W) return ;; esac; sleep 0.2; done
  fail "job $1 still has status $(two_status "$1") after 10 minutes"
}
two_wait_attached() { # PROXY_ID: until a volume tagged for that proxy is in use
  for _ in $(seq 600); do two_tagged "$1" | grep -q '^volume .* in-use ' && return; sleep 0.1; done
  fail "no temporary volume of proxy $1 was attached within 60 s: $(two_tagged "$1")"
}
two_backend_of() { # FD_PID -> the pid of that FD's `osbackup bacula-backend` child
  local process
  for process in /proc/[0-9]*; do
    # (a process may end during the loop: the redirections' errors are silenced too)
    [ "$( { tr '\0' '\n' <"$process/cmdline"; } 2>/dev/null | sed -n 2p)" = bacula-backend ] || continue
    [ "$( { awk '$1 == "PPid:" {print $2}' <"$process/status"; } 2>/dev/null)" = "$1" ] && { echo "${process#/proc/}"; return; }
  done
  fail "no bacula-backend child of the FD $1"
}
# two_restore CLIENT FILESET SERVER_UUID WHERE: the server's files of the newest backup; fails unless "Restore OK".
two_restore() {
  local out
  out=$(printf 'restore client=%s fileset=%s where=%s select current\ncd /@openstack/nova/server/%s/\nmark *\ndone\nyes\nwait\nmessages\n' \
    "$1" "$2" "$4" "$3" | bc)
  printf '%s\n' "$out" | grep -E "restored volume|Termination:" | sed 's/^/    /' || true
  printf '%s\n' "$out" | grep -q "Restore OK" || { printf '%s\n' "$out" >&2; fail "restore of server $3 through $1"; }
}

test_two_proxies() {
  step "two proxies: a cloud with proxy-1 and proxy-2, a second File Daemon, one Job per FD"
  "$osbackup" emulator serve --state "$work/cloud2" --seed "$repo/samples/emulator/two-proxies.yaml" \
    --clouds-yaml "$work/clouds2.yaml" --transition-delay 0.1 --log-level warning >"$work/serve2.out" 2>"$work/serve2.err" &
  two_emulator=$!
  trap 'two_stop; stop_all' EXIT
  for _ in $(seq 300); do [ -s "$work/serve2.out" ] && break; sleep 0.1; done
  [ -s "$work/serve2.out" ] || { cat "$work/serve2.err" >&2; fail "the two-proxy emulator did not start"; }
  # Each FD: its own cloud entry (its proxy's id and device directory), its own state, its own server;
  # slow reads (1 GiB each at 128 MiB/s) so that the jobs overlap and can be caught mid-read.
  local common="backend=$osbackup clouds_yaml=$work/clouds2.yaml all_projects=yes bwlimit=1M"  # 8 MiB of data each (holes are not read): jobs of ~8 s overlap
  cat >>"$lab/conf/extra.conf" <<EOC
FileSet { Name = "twoproxies-1"; Include { Plugin = "openstack: $common cloud=emulator state=$work/state-p1 server=app-1" } }
Job { Name = "twoproxies-1"; JobDefs = OpenStackDefs; FileSet = "twoproxies-1" }
EOC
  export BACULA_FD2_PORT=${BACULA_FD2_PORT:-$((${BACULA_FD_PORT:-19102} + 2))}
  export OSB_PLUGIN2="openstack: $common cloud=emulator-proxy-2 state=$work/state-p2 server=app-2"
  "$repo/scripts/bacula-up" "$lab" >"$work/bacula-up.log" 2>&1 || { cat "$work/bacula-up.log" >&2; fail "bacula-up with a second FD"; }
  local fd1 fd2 proxy1 proxy2 app1 app2
  fd1=$(awk '$1 == "fd" {print $2}' "$lab/pids")
  fd2=$(awk '$1 == "fd2" {print $2}' "$lab/pids")
  [ -n "$fd2" ] || fail "bacula-up started no second FD"
  proxy1=$(two_id_of servers proxy-1); proxy2=$(two_id_of servers proxy-2)
  app1=$(two_id_of servers app-1); app2=$(two_id_of servers app-2)
  echo "    lab-fd (pid $fd1) is proxy-1, lab-fd2 (pid $fd2, port $BACULA_FD2_PORT) is proxy-2"

  step "both FDs back up at once, each its own server through its own proxy"
  local j1 j2
  # queued in one console session: two sessions a few seconds apart on a loaded machine let the first
  # (a few seconds long) end before the second starts
  local queued
  queued=$(printf 'run job=twoproxies-1 level=Full yes\nrun job=openstack-backup-2 level=Full yes\n' | bc |
    sed -n 's/.*Job queued. JobId=\([0-9]*\).*/\1/p')
  j1=$(sed -n 1p <<<"$queued")
  j2=$(sed -n 2p <<<"$queued")
  [ -n "$j1" ] && [ -n "$j2" ] || fail "the two jobs were not queued ($j1, $j2)"
  two_wait_end "$j1"; two_wait_end "$j2"
  [ "$(two_status "$j1")" = T ] && [ "$(two_status "$j2")" = T ] ||
    { tail -40 "$lab/log/bacula.log" >&2; fail "jobs $j1 and $j2 ended with $(two_status "$j1") and $(two_status "$j2")"; }
  local times
  times=$(two_sql "select (select StartTime from Job where JobId=$j2) < (select EndTime from Job where JobId=$j1)
    and (select StartTime from Job where JobId=$j1) < (select EndTime from Job where JobId=$j2)")
  [ "$times" = 1 ] || fail "jobs $j1 and $j2 did not run at the same time: $(two_sql "select JobId, StartTime, EndTime from Job where JobId in ($j1, $j2)")"
  two_files "$j1" | grep -q "/$app1/" && ! two_files "$j1" | grep -q "/$app2/" || fail "job $j1 (FD 1) should save app-1 only: $(two_files "$j1")"
  two_files "$j2" | grep -q "/$app2/" && ! two_files "$j2" | grep -q "/$app1/" || fail "job $j2 (FD 2) should save app-2 only: $(two_files "$j2")"
  echo "    jobs $j1 (lab-fd, app-1) and $j2 (lab-fd2, app-2) ran at the same time and ended T"
  [ -d "$work/state-p1/maps/twoproxies-1" ] && [ -d "$work/state-p2/maps/openstack-backup-2" ] ||
    fail "each FD's hash maps should be in its own state, per Job: $(find "$work"/state-p* -maxdepth 2 -type d | tr '\n' ' ')"
  two_restore lab-fd twoproxies-1 "$app1" "$work/r-p1"
  two_restore lab-fd2 openstack-set-2 "$app2" "$work/r-p2"
  local volume server id where
  for volume in "$app1:$(two_id_of volumes app-1-root):p1" "$app2:$(two_id_of volumes app-2-root):p2"; do
    IFS=: read -r server id where <<<"$volume"
    cmp "$(ls "$work/r-$where"/@openstack/nova/server/"$server"/*_"$id".raw)" "$work/cloud2/volumes/$id.img" ||
      fail "the restore through FD ${where#p} differs for volume $id"
  done
  echo "    app-1 through lab-fd and app-2 through lab-fd2 restored byte for byte"
  two_expect_clean

  step "FD 1's backend killed mid-read while FD 2's job is live: FD 1's cleanup takes only FD 1's leftovers"
  j2=$(two_start_job openstack-backup-2 Incremental)
  two_wait_attached "$proxy2"
  local backend2 backend1 held left after
  backend2=$(two_backend_of "$fd2")
  kill -STOP "$backend2"  # FD 2's job stays live, mid-read, whatever the machine's load
  held=$(two_tagged "$proxy2")
  grep -q '^snapshot ' <<<"$held" && grep -q "^volume .* in-use proxy-2$" <<<"$held" || fail "FD 2's job holds no snapshot and attached volume: $held"
  j1=$(two_start_job twoproxies-1 Incremental)
  two_wait_attached "$proxy1"
  backend1=$(two_backend_of "$fd1")
  kill -9 "$backend1"
  for _ in $(seq 600); do case "$(two_status "$j1")" in f | E | e) break ;; esac; sleep 0.1; done
  case "$(two_status "$j1")" in f | E | e) echo "    job $j1 (FD 1) failed as it should ($(two_status "$j1"))" ;; *) fail "job $j1: status $(two_status "$j1")" ;; esac
  kill -0 "$fd1" || fail "FD 1 died"
  left=$(two_tagged "$proxy1")
  [ -n "$left" ] || fail "the killed backend left nothing of proxy-1 to clean up; this step proves nothing"
  OS_CLIENT_CONFIG_FILE="$work/clouds2.yaml" "$osbackup" cleanup --os-cloud emulator --state "$work/state-p1" >"$work/cleanup-p1.out" 2>&1 ||
    { cat "$work/cleanup-p1.out" >&2; fail "osbackup cleanup for proxy-1"; }
  sed 's/^/    /' "$work/cleanup-p1.out"
  [ -z "$(two_tagged "$proxy1")" ] || fail "proxy-1's leftovers after its cleanup: $(two_tagged "$proxy1")"
  after=$(two_tagged "$proxy2")
  [ "$after" = "$held" ] || fail "FD 2's resources changed under its live job: before: $held; after: $after"
  [ "$(two_status "$j2")" = R ] || fail "job $j2 (FD 2) should still be running, has status $(two_status "$j2")"
  echo "    FD 2's snapshot, volume and attachment untouched while its job $j2 runs"
  kill -CONT "$backend2"
  two_wait_end "$j2"
  [ "$(two_status "$j2")" = T ] || { tail -40 "$lab/log/bacula.log" >&2; fail "job $j2 (FD 2) ended with $(two_status "$j2")"; }
  echo "    job $j2 (FD 2) ended T"
  two_expect_clean
}
