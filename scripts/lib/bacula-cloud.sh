# Shared by scripts/demo-bacula and scripts/test-bacula (sourced, not run): the demo cloud in the
# emulator, a loopback Bacula lab whose FileSet runs the osbackup plugin against it, and helpers.
# The caller sets: osbackup (absolute path of the binary), repo, work (a scratch folder), and then
# calls start_cloud and start_bacula PLUGIN_KEYS; stop_all is its EXIT trap.

lab=$work/lab
emulator=''
stop_all() {
  "$repo/scripts/bacula-down" "$lab" >/dev/null 2>&1 || true
  if [ -n "$emulator" ]; then kill -TERM "$emulator" 2>/dev/null || true; wait "$emulator" 2>/dev/null || true; fi
  [ -n "${KEEP_WORK:-}" ] && echo "work left in $work" >&2 || rm -rf "$work"
}
step() { printf '\n== %s\n' "$*"; }
skip() { printf '\n== Bacula part skipped: %s\n' "$*"; exit 0; }

# The emulator with samples/emulator/demo.yaml and its clouds.yaml (cloud "emulator").
start_cloud() {
  "$osbackup" emulator serve --state "$work/cloud" --seed "$repo/samples/emulator/demo.yaml" \
    --clouds-yaml "$work/clouds.yaml" --transition-delay 0.1 --log-level warning >"$work/serve.out" 2>"$work/serve.err" &
  emulator=$!
  for _ in $(seq 300); do [ -s "$work/serve.out" ] && break; sleep 0.1; done
  [ -s "$work/serve.out" ] || { echo "the emulator did not start:" >&2; cat "$work/serve.err" >&2; exit 1; }
}

# Bacula daemons whose Job "openstack-backup" runs `openstack: backend=… clouds_yaml=… cloud=emulator state=… KEYS`.
start_bacula() {
  [ "$(id -u)" -eq 0 ] || skip "it needs root to install and run Debian's Bacula daemons"
  [ -f "$repo/.build/bacula/openstack-fd.so" ] || make -C "$repo" plugin >/dev/null
  export OSB_PLUGIN="openstack: backend=$osbackup clouds_yaml=$work/clouds.yaml cloud=emulator state=$work/state $*"
  "$repo/scripts/bacula-up" "$lab" >"$work/bacula-up.log" 2>&1 ||
    { cat "$work/bacula-up.log" >&2; skip "the Bacula packages could not be installed or started"; }
  db=$lab/dir/bacula.db
}

bc() { "$repo/scripts/bconsole" "$lab" 2>&1; }
inventory() { "$osbackup" emulator inventory --state "$work/cloud" --json; }
# The id of the volume (or server, with `servers`) named $2.
id_of() { inventory | /usr/bin/python3 -c 'import json, sys; print(next(x["id"] for x in json.load(sys.stdin)[sys.argv[1]] if x["name"] == sys.argv[2]))' "$1" "$2"; }
job_status() { sqlite3 "$db" "select JobStatus from Job where JobId=$1"; }

# run_job LEVEL [JOB] -> JOBID and OUT; fails unless the job ends OK (T).
run_job() {
  OUT=$(printf 'run job=%s level=%s yes\nwait\nmessages\n' "${2:-openstack-backup}" "$1" | bc)
  JOBID=$(sed -n 's/.*Job queued. JobId=\([0-9]*\).*/\1/p' <<<"$OUT" | head -1)
  printf '%s\n' "$OUT" | grep -E "Termination:|volumes saved" | sed 's/^/    /' || true
  [ "$(job_status "$JOBID")" = T ] || { printf '%s\n' "$OUT" >&2; echo "job $JOBID ended with status $(job_status "$JOBID")" >&2; exit 1; }
}
# name and delta sequence of each file a job saved
files_of() {
  sqlite3 "$db" "select p.Path||fn.Name||' delta '||f.DeltaSeq from File f join Path p using(PathId) join Filename fn using(FilenameId) where f.JobId=$1 and f.FileIndex>0 order by 1"
}
# restore_server SERVER_UUID WHERE [BEFORE] [FILESET] -> OUT: the server's files as they were at the newest
# backup (ended no later than BEFORE, "YYYY-MM-DD HH:MM:SS", when given); fails unless "Restore OK".
# (9.6 ignores a jobid= list for an Accurate restore and takes the newest chain; before= is honoured.)
# With PLUGIN_OPTIONS set ("NUMBER VALUE" lines: an option's number in bconsole's Plugin Options menu and
# its value), the run is confirmed through `mod` -> Plugin Options -> `mod` for each option -> `yes`.
# With RESTORE_MAY_FAIL set, a restore that does not end OK is left to the caller to judge.
restore_server() {
  local when="" answers=""
  [ -n "${3:-}" ] && when="before=\"$3\""
  if [ -n "${PLUGIN_OPTIONS:-}" ]; then
    answers=$(printf 'mod\n13\n'; while read -r number value; do printf 'mod\n%s\n%s\n' "$number" "$value"; done <<<"$PLUGIN_OPTIONS"; printf 'yes\n')
    answers+=$'\n'
  fi
  OUT=$(printf 'restore client=lab-fd fileset=%s where=%s %s select current\ncd /@openstack/nova/server/%s/\nmark *\ndone\n%syes\nwait\nmessages\n' \
    "${4:-openstack-set}" "$2" "$when" "$1" "$answers" | bc)
  printf '%s\n' "$OUT" | grep -E "restored volume|: new server|Termination:" | sed 's/^/    /' || true
  [ -n "${RESTORE_MAY_FAIL:-}" ] || printf '%s\n' "$OUT" | grep -q "Restore OK" || { printf '%s\n' "$OUT" >&2; exit 1; }
}
end_time() { sqlite3 "$db" "select EndTime from Job where JobId=$1"; }
# Fails unless the cloud holds no snapshot, no osbackup-tagged volume and nothing of osbackup on the proxy.
expect_clean() {
  inventory | /usr/bin/python3 -c '
import json, sys
inventory = json.load(sys.stdin)
assert not inventory["snapshots"], inventory["snapshots"]
temporary = [v for v in inventory["volumes"] if "osbackup_job" in v["metadata"]]
assert not temporary, temporary
proxy = [a for a in inventory["attachments"] if a["serverName"] == "backup-proxy" and a["device"] != "/dev/vda"]
assert not proxy, proxy
print("    clean:", len(inventory["volumes"]), "volumes, 0 snapshots, nothing of osbackup on the proxy")'
}
