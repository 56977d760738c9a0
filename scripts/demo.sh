#!/usr/bin/env bash
# The main job: build weft, start `weft serve` on 127.0.0.1:7410 with its
# embedded SQLite store under ./weft-data, and show two replicas syncing
# through it. The server keeps running afterwards (Ctrl-C stops it);
# WEFT_DEMO_EXIT=1 stops it once the demonstration is done.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" >/dev/null
weft=build/release/weft
url=ws://127.0.0.1:7410

"$weft" serve --listen 127.0.0.1:7410 --data ./weft-data &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/7410) 2>/dev/null && break
  sleep 0.1
done

demo=$(mktemp -d)
echo "--- replica A writes todos/1 and waits for the server's acknowledgement"
"$weft" put --db "$demo/a.db" --server "$url" todos 1 '{"title":"buy milk","done":false}'
echo "--- replica B, a separate file, syncs and reads it"
"$weft" get --db "$demo/b.db" --server "$url" todos 1
echo "--- B marks it done; A syncs and sees the merged document"
"$weft" put --db "$demo/b.db" --server "$url" todos 1 '{"done":true}'
"$weft" get --db "$demo/a.db" --server "$url" todos 1
echo "--- canonical state hashes: A, B and the server agree"
echo "A      $("$weft" dump --db "$demo/a.db" --hash)"
echo "B      $("$weft" dump --db "$demo/b.db" --hash)"
echo "server $("$weft" dump --data ./weft-data --hash)"
rm -rf "$demo"

if [ "${WEFT_DEMO_EXIT:-0}" = 1 ]; then
  exit 0
fi
echo "--- weft serve is listening on $url (data in ./weft-data); Ctrl-C stops it"
wait $server
