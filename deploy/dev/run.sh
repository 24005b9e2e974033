#!/usr/bin/env bash
# `make run`: migrate, seed the demo clinic, start every process under honcho and print where to start.
# Expects the virtualenv at .venv (the Makefile builds it first). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
export SUITE_ENV=${SUITE_ENV:-development}
export LOG_FORMAT=${LOG_FORMAT:-text}
export BOOKING_PORT=${BOOKING_PORT:-8001} NOTIFY_PORT=${NOTIFY_PORT:-8002} CONSULT_PORT=${CONSULT_PORT:-8003}
export CHECKINS_PORT=${CHECKINS_PORT:-8004}
export BOOKING_PUBLIC_URL=${BOOKING_PUBLIC_URL:-http://127.0.0.1:$BOOKING_PORT}
export NOTIFY_PUBLIC_URL=${NOTIFY_PUBLIC_URL:-http://127.0.0.1:$NOTIFY_PORT}
export CONSULT_PUBLIC_URL=${CONSULT_PUBLIC_URL:-http://127.0.0.1:$CONSULT_PORT}
export CHECKINS_PUBLIC_URL=${CHECKINS_PUBLIC_URL:-http://127.0.0.1:$CHECKINS_PORT}
# Safety alerts reach the console outbox (notify's /outbox page) on the embedded defaults.
export CHECKINS_ONCALL_PHONES=${CHECKINS_ONCALL_PHONES:-+15555550100} CHECKINS_ONCALL_EMAILS=${CHECKINS_ONCALL_EMAILS:-oncall@localhost}
REDIS_PORT=${REDIS_PORT:-6379}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
REDIS_DIR=${REDIS_DIR:-var/redis}
mkdir -p var "$REDIS_DIR"

# Each Procfile process runs as `suite run NAME --supervise`: started again when it dies, and the suite stopped
# (honcho stops everything when one exits) when it keeps dying. Honcho alone does neither: docs/ops.md.
procfile=var/Procfile.run
sed -E 's/^([a-z][a-z0-9-]*): ((([A-Z_]+)=[^ ]+ )*).*$/\1: \2suite run \1 --supervise/' deploy/Procfile >"$procfile"
if python - "$REDIS_URL" <<'PY'
import sys, redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
except redis.RedisError:
    sys.exit(1)
PY
then
  echo "Using the Redis already answering at $REDIS_URL"
else
  echo "redis: redis-server --bind 127.0.0.1 --port $REDIS_PORT --dir $REDIS_DIR --appendonly yes --save ''" >>"$procfile"
  # Migrations and the seed write only to the databases, so they need not wait for Redis.
fi

for service in booking notify consult checkins; do
  flask --app "services.$service" db upgrade >/dev/null
done
seed_json=$(flask --app services.booking seed-demo)
first_provider=$(python -c 'import json, sys; print(json.loads(sys.argv[1])["providers"][0])' "$seed_json")
feed_json=$(flask --app services.notify feed-link "$first_provider")

# Three notify workers, as the deploy files run: a worker waits on PostgreSQL, Redis and the provider for about
# half its busy time, and a third overlaps those waits; measured in the open loop (docs/performance.md).
honcho -f "$procfile" -d . start -c "notify-worker=${NOTIFY_WORKERS:-3}" &
honcho_pid=$!
trap 'kill -INT $honcho_pid 2>/dev/null || true; wait $honcho_pid 2>/dev/null || true' INT TERM

python - "$seed_json" "$feed_json" <<'PY' || { kill -INT $honcho_pid 2>/dev/null || true; wait $honcho_pid; exit 1; }
import json, os, sys, time, urllib.request

urls = {name: os.environ[f"{name.upper()}_PUBLIC_URL"] for name in ("booking", "notify", "consult", "checkins")}
deadline = time.time() + 60
for name, base in urls.items():
    while True:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            sys.exit(f"{name} did not become ready at {base}/readyz")
        time.sleep(0.5)

seed = json.loads(sys.argv[1])
feed = json.loads(sys.argv[2])
lines = [
    "",
    "The telehealth suite is running with its demo clinic. Open:",
    f"  Book an appointment  {seed['booking_page']}",
    f"  Booking API docs     {urls['booking']}/api/docs",
    f"  Notify API docs      {urls['notify']}/api/docs",
    f"  Messages \"sent\"      {urls['notify']}/outbox   (every SMS and email, with attachments)",
    f"  Consult API docs     {urls['consult']}/api/docs",
    f"  Checkins API docs    {urls['checkins']}/api/docs   (check-in links arrive in the outbox after each infusion)",
]
if seed.get("demo_manage_url"):
    lines.append(f"  Demo patient's booking (signed manage link)  {seed['demo_manage_url']}")
lines.append(f"  Staff day sheet      {seed['day_sheet_url']}   (who is ready: attendance, safety check, escort)")
lines.append(f"  Provider's calendar feed  {feed['url']}   (subscribe in a calendar app: {feed['webcal_url']})")
if seed.get("demo_booking"):
    lines.append(f"  Demo video room (join links)  CONSULT_PUBLIC_URL={urls['consult']} .venv/bin/flask --app services.consult join-links {seed['demo_booking']} --open-now")
lines += [
    f"  Staff API key        dev-api-key   (curl -H 'Authorization: Bearer dev-api-key' {urls['booking']}/api/v1/bookings)",
    "Press Ctrl-C to stop everything.",
    "",
]
print("\n".join(lines), flush=True)
PY
status=0
wait $honcho_pid || status=$?
# 130: Ctrl-C. Anything else: a process exited for good (a supervisor gave up, or redis-server died).
((status == 0 || status == 130)) || echo "make run: the suite stopped because a process exited; see above." >&2
exit $status
