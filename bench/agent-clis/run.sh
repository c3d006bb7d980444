#!/usr/bin/env bash
# The coding-agent CLIs against `hearth up` (issue 21, Must show): each one turn, as a new user runs
# them, through a logging proxy that records every request's status, time to the first byte of the
# answer and to its end. hearth runs with default settings (the offline demo, a free port, a temp
# state dir); every CLI gets a temp HOME with config pointing at hearth, telemetry and updates off.
#
#   cd bench/agent-clis && npm i && ./run.sh [client...]      (default: codex qwen opencode cn claude)
#
# Writes $OUT/results.jsonl (one line per run) and prints a table; OUT defaults to a temp dir.
# A client whose package is not installed is skipped with the reason. Each client runs twice: "turn"
# (as the user runs it) and "tool": none of these CLIs can force a tool call (each sends tool_choice
# auto on every request) and the demo's random model never calls one unforced, so in the tool run
# the proxy forces one harmless tool (a plan/todo list, a read, a listing) on the turn's first request
# that offers tools (force-tool.mjs); the CLI must run it, send its result back, and finish the turn.
# MODES="turn" runs only the plain turn.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN="$HERE/node_modules/.bin"
OUT=${OUT:-$(mktemp -d /tmp/hearth-agent-clis-XXXXXX)}
CLIENTS=("$@")
[ ${#CLIENTS[@]} -eq 0 ] && CLIENTS=(codex qwen opencode cn claude)
PROMPT=${PROMPT:-'Say hello in one short sentence.'}
TURN_TIMEOUT=${TURN_TIMEOUT:-600}
read -r -a MODES <<< "${MODES:-turn tool}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

now_ms() { date +%s%3N; }

# --- hearth up: defaults, free port, its own state dir --------------------------------------------
export HEARTH_HOME="$OUT/hearth-home"
mkdir -p "$HEARTH_HOME"
(cd "$ROOT" && exec node bin/hearth.js up --port 0 > "$OUT/hearth.log" 2>&1) &
HEARTH_PID=$!
cleanup() {
  [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null
  # SIGTERM: hearth up stops its workers and nats-server itself; wait for it.
  kill -TERM "$HEARTH_PID" 2>/dev/null
  for _ in $(seq 1 30); do kill -0 "$HEARTH_PID" 2>/dev/null || break; sleep 1; done
  # Anything still running from this run's state dir (a worker outlives its gateway by design).
  for pid in $(pgrep -f -- "$HEARTH_HOME/" 2>/dev/null); do kill "$pid" 2>/dev/null; done
}
trap cleanup EXIT
ORIGIN=""
for _ in $(seq 1 600); do
  ORIGIN=$(grep -o 'OpenAI API at http://[0-9.:]*' "$OUT/hearth.log" | head -1 | sed 's/OpenAI API at //')
  [ -n "$ORIGIN" ] && curl -sf "$ORIGIN/ready" > /dev/null && break
  sleep 1
done
[ -z "$ORIGIN" ] && { echo "hearth up did not start; see $OUT/hearth.log"; exit 1; }
MODEL=$(curl -s "$ORIGIN/v1/models" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).data[0].id))')
echo "hearth at $ORIGIN, model $MODEL; output in $OUT"

# --- one run: a proxy of its own (its log is this run's requests), a temp HOME, the CLI -----------
run_client() {
  local client=$1 mode=$2
  local dir="$OUT/$client-$mode" home="$OUT/$client-$mode/home" work="$OUT/$client-$mode/work"
  mkdir -p "$home" "$work"
  local plog="$dir/requests.jsonl"
  : > "$plog"
  local force=0
  [ "$mode" = tool ] && force=1
  FORCE_TOOL=$force node "$HERE/log-proxy.mjs" "$ORIGIN" 0 "$plog" > "$dir/proxy.out" 2>&1 &
  PROXY_PID=$!
  local port=""
  for _ in $(seq 1 50); do port=$(sed -n 's/^listening //p' "$dir/proxy.out"); [ -n "$port" ] && break; sleep 0.1; done
  local base="http://127.0.0.1:$port"
  local -a cmd
  local -a envs=(HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" XDG_CACHE_HOME="$home/.cache" XDG_STATE_HOME="$home/.local/state"
    NO_UPDATE_NOTIFIER=1 DO_NOT_TRACK=1 CI=1 PATH="$PATH")
  case "$client" in
    codex)
      mkdir -p "$home/.codex"
      cat > "$home/.codex/config.toml" <<EOF
model = "$MODEL"
model_provider = "hearth"
check_for_update_on_startup = false
[analytics]
enabled = false
[model_providers.hearth]
name = "hearth"
base_url = "$base/v1"
wire_api = "responses"
EOF
      envs+=(CODEX_HOME="$home/.codex")
      cmd=("$BIN/codex" exec --skip-git-repo-check "$PROMPT") ;;
    qwen)
      mkdir -p "$home/.qwen"
      cat > "$home/.qwen/settings.json" <<EOF
{ "security": { "auth": { "selectedType": "openai" } }, "telemetry": { "enabled": false }, "privacy": { "usageStatisticsEnabled": false }, "general": { "disableAutoUpdate": true, "disableUpdateNag": true } }
EOF
      envs+=(OPENAI_API_KEY=none OPENAI_BASE_URL="$base/v1" OPENAI_MODEL="$MODEL")
      cmd=("$BIN/qwen" -p "$PROMPT") ;;
    opencode)
      mkdir -p "$home/.config/opencode"
      cat > "$home/.config/opencode/opencode.json" <<EOF
{ "\$schema": "https://opencode.ai/config.json", "autoupdate": false, "share": "disabled",
  "provider": { "hearth": { "npm": "@ai-sdk/openai-compatible", "name": "hearth", "options": { "baseURL": "$base/v1", "apiKey": "none" },
    "models": { "$MODEL": { "name": "$MODEL", "limit": { "context": 131072, "output": 32768 } } } } },
  "model": "hearth/$MODEL" }
EOF
      envs+=(OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_SHARE=1)
      cmd=("$BIN/opencode" run -m "hearth/$MODEL" "$PROMPT") ;;
    cn)
      mkdir -p "$home/.continue"
      cat > "$home/.continue/config.yaml" <<EOF
name: hearth
version: 0.0.1
schema: v1
models:
  - name: hearth
    provider: openai
    model: $MODEL
    apiBase: $base/v1
    apiKey: none
    roles: [chat, edit, apply]
EOF
      envs+=(CONTINUE_TELEMETRY_ENABLED=0 CONTINUE_ALLOW_ANONYMOUS_TELEMETRY=0)
      cmd=("$BIN/cn" -p --config "$home/.continue/config.yaml" "$PROMPT") ;;
    claude)
      envs+=(ANTHROPIC_BASE_URL="$base" ANTHROPIC_API_KEY=none ANTHROPIC_MODEL="$MODEL" ANTHROPIC_SMALL_FAST_MODEL="$MODEL" ANTHROPIC_DEFAULT_HAIKU_MODEL="$MODEL"
        DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1)
      cmd=("$BIN/claude" -p "$PROMPT") ;;
  esac
  local version
  version=$(node -e "console.log(require('$HERE/package.json').dependencies[process.argv[1]])" "$(pkg_of "$client")")
  local t0; t0=$(now_ms)
  (cd "$work" && env -i "${envs[@]}" timeout "$TURN_TIMEOUT" "${cmd[@]}" < /dev/null > "$dir/stdout" 2> "$dir/stderr")
  local rc=$?
  local t1; t1=$(now_ms)
  sleep 0.3
  kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null; PROXY_PID=""
  node -e '
    const fs = require("fs");
    const [client, mode, version, rc, t0, t1, plog] = process.argv.slice(1);
    const reqs = fs.readFileSync(plog, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const model = reqs.filter((r) => /\/(chat\/completions|responses|messages|completions)(\?|$)/.test(r.path) && r.method === "POST");
    const first = model.find((r) => r.status < 300 && r.firstByteMs !== null);
    const forced = reqs.find((r) => r.forced !== undefined);
    const tool = mode !== "tool" ? {} : {
      forced: forced?.forced ?? null,
      // the call went out and its result came back in a later request of the same turn
      resultSent: forced !== undefined && reqs.some((r) => r.toolResult === true && r.n > forced.n),
      ...(forced === undefined ? { offeredNotForced: reqs.find((r) => r.offeredNotForced)?.offeredNotForced ?? [] } : {}),
    };
    const out = {
      client, mode, version, exit: Number(rc), turnS: (t1 - t0) / 1000, ...tool,
      firstTokenS: first === undefined ? null : (first.startMs + first.firstByteMs - Number(t0)) / 1000,
      requests: reqs.length, modelRequests: model.length, non2xx: reqs.filter((r) => !(r.status >= 200 && r.status < 300)).map((r) => `${r.method} ${r.path.split("?")[0]} ${r.status}`),
    };
    fs.appendFileSync(process.argv[8], JSON.stringify(out) + "\n");
    console.log(JSON.stringify(out));
  ' "$client" "$mode" "$version" "$rc" "$t0" "$t1" "$plog" "$RESULTS"
}

pkg_of() {
  case "$1" in
    codex) echo @openai/codex ;; qwen) echo @qwen-code/qwen-code ;; opencode) echo opencode-ai ;; cn) echo @continuedev/cli ;; claude) echo @anthropic-ai/claude-code ;;
  esac
}

for client in "${CLIENTS[@]}"; do
  bin=$client
  if [ ! -x "$BIN/$bin" ]; then
    echo "{\"client\":\"$client\",\"mode\":\"turn\",\"skipped\":\"$(pkg_of "$client") is not installed (npm i in bench/agent-clis failed or was not run)\"}" | tee -a "$RESULTS"
    continue
  fi
  for mode in "${MODES[@]}"; do run_client "$client" "$mode"; done
done

echo
node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  console.log("| client | version | mode | exit | requests (non-2xx) | tool forced, result sent back | first token s | turn s |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    if (r.skipped) { console.log(`| ${r.client} | | ${r.mode} | skipped: ${r.skipped} | | | | |`); continue; }
    const tool = r.mode !== "tool" ? "" : r.forced === null ? `none forced (offered: ${r.offeredNotForced.join(", ")})` : `${r.forced}, ${r.resultSent ? "yes" : "NO"}`;
    console.log(`| ${r.client} | ${r.version} | ${r.mode} | ${r.exit} | ${r.requests} (${r.non2xx.length === 0 ? "none" : r.non2xx.join(", ")}) | ${tool} | ${r.firstTokenS ?? "-"} | ${r.turnS} |`);
  }
' "$RESULTS"
