#!/usr/bin/env bash
# Issue 20's scripted run: a model no single device holds, on a gateway + 2 workers × 1 thread,
# each worker offering MEM (default 60% of the int4 model as the planner counts it), workers
# without the checkpoint (they fetch their layers from the gateway). Prints: cold start to /ready,
# one greedy request's text and timing, every process's peak RSS (VmHWM), then a gateway restart
# (same flags) and the time until a request succeeds again with no command typed on the workers.
#   bash bench/big-cluster.sh /work/big/llama3.2-3b [RUN_DIR]
# Env: MEM (e.g. 1.5G), PORT (18080), NATS_PORT (14222), KEEP=1 (keep caches: a warm restart),
# SPOT (cluster.spotCheckRate, default: hearth's default).
set -uo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?model dir}
RUN=${2:-/tmp/hearth-big-run}
PORT=${PORT:-18080}
NATS_PORT=${NATS_PORT:-14222}
[ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"
mkdir -p "$RUN/gw" "$RUN/w1" "$RUN/w2"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
hwm() { awk '/VmHWM/ { printf "%.0f MB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo gone; }
rss() { awk '/VmRSS/ { printf "%.0f MB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo gone; }
SPOT_FLAG=(); [ -n "${SPOT:-}" ] && SPOT_FLAG=(--config "$RUN/spot.yaml") && printf 'cluster:\n  spotCheckRate: %s\n' "$SPOT" > "$RUN/spot.yaml"

start_gateway() {
  HEARTH_HOME="$RUN/gw" HEARTH_CACHE_DIR="$RUN/gw/cache" HEARTH_LOG_LEVEL=info \
    node bin/hearth.js up --model "$MODEL" --quant int4 --workers 0 --port "$PORT" --nats-port "$NATS_PORT" "${SPOT_FLAG[@]}" >> "$RUN/gw.log" 2>&1 &
  GW=$!
}
start_worker() { # name
  until [ -s "$RUN/gw/cluster-token" ]; do sleep 0.2; done
  HEARTH_TOKEN=$(cat "$RUN/gw/cluster-token") HEARTH_HOME="$RUN/$1" HEARTH_CACHE_DIR="$RUN/$1/cache" HEARTH_LOG_LEVEL=info \
    node bin/hearth.js worker --join "nats://127.0.0.1:$NATS_PORT" --cluster default --name "$1" --threads 1 \
      ${MEM:+--memory "$MEM"} --cache "$RUN/$1/weights" >> "$RUN/$1.log" 2>&1 &
  echo $!
}
ready() { curl -sf "http://127.0.0.1:$PORT/ready" > /dev/null; }
ask() {
  local id
  id=$(curl -sf "http://127.0.0.1:$PORT/v1/models" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).data[0].id))') || return 1
  curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"$id\",\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_tokens\":16,\"temperature\":0}"
}
ask64() {
  local id
  id=$(curl -sf "http://127.0.0.1:$PORT/v1/models" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).data[0].id))') || return 1
  curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"$id\",\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_tokens\":64,\"temperature\":0}"
}
trap 'kill $GW $W1 $W2 2>/dev/null; wait 2>/dev/null' EXIT

t0=$(now)
start_gateway
W1=$(start_worker w1)
W2=$(start_worker w2)
until ready; do sleep 0.5; kill -0 $GW 2>/dev/null || { echo "gateway exited"; tail -20 "$RUN/gw.log"; exit 1; }; done
echo "start to /ready: $(since "$t0") s"
t1=$(now)
ask > "$RUN/answer1.json"; grep -q '"choices"' "$RUN/answer1.json" || { echo "first request failed: $(head -c 400 "$RUN/answer1.json")"; exit 1; }; echo "first request: $(since "$t1") s: $(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));console.log(JSON.stringify(r.choices[0].message.content), r.usage.completion_tokens, "tokens")' "$RUN/answer1.json")"
# Decode speed: a 64-token answer less a 16-token one (the same prompt: prefill cancels out).
t3=$(now); ask64 > "$RUN/answer64.json"; T64=$(since "$t3"); t4=$(now); ask > /dev/null; T16=$(since "$t4")
N64=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).usage.completion_tokens)' "$RUN/answer64.json")
echo "decode: $(awk -v a="$T64" -v b="$T16" -v n="$N64" 'BEGIN { printf "%.2f", (n - 16) / (a - b) }') tok/s measured ($N64 vs 16 tokens); the plan predicted $(grep -h 'new plan' "$RUN/gw.log" | tail -1 | grep -o '"predictedTokS":[0-9.]*' | cut -d: -f2) tok/s"
echo "peak RSS: gateway(up) $(hwm $GW), w1 $(hwm $W1), w2 $(hwm $W2); RSS now: gateway $(rss $GW), w1 $(rss $W1), w2 $(rss $W2)"
curl -sf "http://127.0.0.1:$PORT/v1/cluster" > "$RUN/cluster.json" && node -e '
  const c = JSON.parse(require("fs").readFileSync(process.argv[1]));
  for (const n of c.nodes) console.log(`  ${n.name}: layers ${JSON.stringify(n.range)} weights ${(n.memory.weights/1e6).toFixed(0)} MB kv ${(n.memory.kvBytes/1e6).toFixed(0)} MB offered ${(n.memory.offered/1e6).toFixed(0)} MB`);
  console.log("  spot check:", JSON.stringify(c.spotCheck));
  if (c.forecast) console.log("  forecast:", c.forecast.summary ?? JSON.stringify(c.forecast));' "$RUN/cluster.json"

echo "--- gateway restart (same flags)"
kill $GW; wait $GW 2>/dev/null
t2=$(now)
start_gateway
until ask > "$RUN/answer2.json" 2>/dev/null && grep -q '"choices"' "$RUN/answer2.json"; do sleep 0.5; done
echo "restart to a served request: $(since "$t2") s; workers alive: $(kill -0 $W1 2>/dev/null && echo w1) $(kill -0 $W2 2>/dev/null && echo w2)"
cmp -s <(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).choices[0].message.content)' "$RUN/answer1.json") \
       <(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).choices[0].message.content)' "$RUN/answer2.json") \
  && echo "same text after the restart" || echo "TEXT DIFFERS after the restart"
echo "peak RSS: gateway(up, restarted) $(hwm $GW), w1 $(hwm $W1), w2 $(hwm $W2)"

# The cluster's own split and 1 thread: int4 results move with the split (a stage boundary breaks a
# fused residual add + norm) and with the thread count, and a random model's greedy text is full of
# near-ties, so only the same split and threads are comparable bit for bit.
SPLIT=$(node -e 'const c = JSON.parse(require("fs").readFileSync(process.argv[1])); console.log(c.stages.map((s) => `${s.start}:${s.end}`).join(","))' "$RUN/cluster.json")
echo "--- the same request in one process: hearth generate --split $SPLIT --threads 1"
kill $W1 $W2 2>/dev/null; wait $W1 $W2 2>/dev/null
HEARTH_CACHE_DIR="$RUN/gen-cache" node bin/hearth.js generate --model "$MODEL" --quant int4 --split "$SPLIT" --threads 1 --chat \
  --prompt "Once upon a time" --max-tokens 16 --temperature 0 > "$RUN/generate.txt" 2> "$RUN/generate.err"
node -e '
  const fs = require("fs");
  const a = JSON.parse(fs.readFileSync(process.argv[1])).choices[0].message.content;
  const g = fs.readFileSync(process.argv[2], "utf8").replace(/\n$/, "");
  console.log(a === g ? "greedy text equal to hearth generate in one process" : `TEXT DIFFERS from hearth generate: ${JSON.stringify(a)} vs ${JSON.stringify(g)}`);' "$RUN/answer1.json" "$RUN/generate.txt"
