// A logging reverse proxy between an agent CLI and hearth: every request's method, path, status,
// time to the first body byte of the answer (for a stream: the first event) and to its end, one JSON
// line each. With BODIES_DIR set it also keeps each request body (to read what a client sends; the
// bodies are the client's prompts, so only for local runs like this one). With FORCE_TOOL=1 it forces
// one tool call on the turn's first request that offers tools (force-tool.mjs says why and which).
// Usage: node log-proxy.mjs UPSTREAM_ORIGIN LISTEN_PORT LOG_FILE   (prints "listening PORT")
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { toolForcer } from './force-tool.mjs';

const [upstream, portArg, logFile] = process.argv.slice(2);
if (upstream === undefined || portArg === undefined || logFile === undefined) {
  process.stderr.write('usage: node log-proxy.mjs UPSTREAM_ORIGIN LISTEN_PORT LOG_FILE\n');
  process.exit(2);
}
const target = new URL(upstream);
const bodiesDir = process.env.BODIES_DIR;
const forcer = process.env.FORCE_TOOL === '1' ? toolForcer() : undefined;
let seq = 0;

const server = http.createServer((req, res) => {
  const n = ++seq;
  const started = performance.now();
  const startMs = Date.now();
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body = Buffer.concat(chunks);
    const force = req.method === 'POST' ? forcer?.rewrite(req.url, body) : undefined;
    if (force?.body !== undefined) body = force.body;
    if (bodiesDir !== undefined && body.length > 0) fs.writeFileSync(path.join(bodiesDir, `${String(n).padStart(3, '0')}-${req.method}-${req.url.replace(/[^A-Za-z0-9]+/g, '_').slice(0, 60)}.json`), body);
    const headers = { ...req.headers, host: target.host };
    if (force?.body !== undefined) {
      headers['content-length'] = String(body.length);
      delete headers['transfer-encoding'];
    }
    delete headers['accept-encoding']; // keep the answer plain so its first byte is the first event
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (ur) => {
      let firstByteMs = null;
      let bytes = 0;
      const errChunks = [];
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.on('data', (c) => {
        firstByteMs ??= performance.now() - started;
        bytes += c.length;
        if ((ur.statusCode ?? 0) >= 400 && errChunks.length < 8) errChunks.push(c);
        res.write(c);
      });
      ur.on('end', () => {
        res.end();
        const line = {
          n,
          method: req.method,
          path: req.url,
          status: ur.statusCode,
          startMs,
          stream: String(ur.headers['content-type'] ?? '').includes('text/event-stream'),
          firstByteMs: firstByteMs === null ? null : Math.round(firstByteMs),
          totalMs: Math.round(performance.now() - started),
          bytes,
          ...(force?.forced !== undefined ? { forced: force.forced } : {}),
          ...(force?.offered !== undefined ? { offeredNotForced: force.offered } : {}),
          ...(force?.toolResult === true ? { toolResult: true } : {}),
          ...(errChunks.length > 0 ? { error: Buffer.concat(errChunks).toString().slice(0, 600) } : {}),
        };
        fs.appendFileSync(logFile, JSON.stringify(line) + '\n');
      });
    });
    up.on('error', (e) => {
      fs.appendFileSync(logFile, JSON.stringify({ n, method: req.method, path: req.url, status: 502, error: String(e) }) + '\n');
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `proxy: ${String(e)}`, type: 'server_error' } }));
    });
    up.end(body);
  });
});
server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
