#!/usr/bin/env node
// Markdown table for one trace, used by scripts/bench-text.sh:
//   node bench/peers/table.mjs TRACE.json.gz WEFT_LOCAL.json WEFT_REMOTE.json PEERS.jsonl [RUNS]
// WEFT_*.json hold weft bench text's output (or nothing, if it failed); PEERS.jsonl
// holds run.mjs's lines. weft's final text is checked against endContent
// through final_len and final_sha256.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { gunzipSync } from 'node:zlib';

const [trace, localFile, remoteFile, peersFile, runsArg] = process.argv.slice(2);
const runs = runsArg ? Number(runsArg) : null; // nominal runs; a peer with fewer is marked
if (!peersFile) {
  process.stderr.write('usage: table.mjs TRACE.json.gz WEFT_LOCAL.json WEFT_REMOTE.json PEERS.jsonl\n');
  process.exit(2);
}

const lines = (f) =>
  existsSync(f)
    ? readFileSync(f, 'utf8').split('\n').filter((l) => l.trim().startsWith('{')).map((l) => {
        try { return JSON.parse(l); } catch { return null; }
      }).filter(Boolean)
    : [];

const j = JSON.parse(gunzipSync(readFileSync(trace)).toString('utf8'));
const end = j.endContent;
const sha = createHash('sha256').update(end, 'utf8').digest('hex');
const endLen = [...end].length;

const wl = lines(localFile)[0];
const wr = lines(remoteFile)[0];
const peers = lines(peersFile);

const int = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const ms = (x) => (x == null ? '–' : x >= 100 ? int(x) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ratio = (x) => x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2);
const b = (x) => (x == null ? '–' : x.toFixed(1));

const rows = [];
const problems = [];
let weftMs = null;

function weftCheck(o, mode) {
  if (!o) return `weft bench text --mode ${mode} produced no result`;
  if (o.final_sha256 !== sha || o.final_len !== endLen)
    return `weft bench text --mode ${mode}: final text differs from endContent (len ${o.final_len} vs ${endLen})`;
  return null;
}
const el = weftCheck(wl, 'local');
const er = weftCheck(wr, 'remote');
if (el) problems.push(`weft: ${el}`);
if (er) problems.push(`weft: ${er}`);
if (!el) weftMs = wl.ms;
{
  const enc = wl && !el
    ? `${int(wl.encoded_bytes)}` + (wl.encoded_full_bytes != null ? ` (${int(wl.encoded_full_bytes)} with deleted text)` : '')
    : '–';
  rows.push([
    '**weft**', '(this tree)',
    el ? 'error' : ms(wl.ms),
    el ? '–' : '1.00',
    er ? 'error' : ms(wr.ms),
    enc,
    el ? '–' : b(wl.avg_update_bytes),
    el ? '–' : ms(wl.load_ms),
  ]);
}

for (const p of peers) {
  if (p.error || !p.ok) {
    problems.push(`${p.peer} ${p.version ?? ''}: ${p.error ?? 'no result'}`);
    rows.push([p.peer, p.version ?? '–', 'error', '–', '–', '–', '–', '–']);
    continue;
  }
  if (p.final_sha256 !== sha) problems.push(`${p.peer}: final text differs from endContent`);
  rows.push([
    p.peer + (runs && p.runs !== runs ? ` (${p.runs} run${p.runs > 1 ? 's' : ''})` : ''),
    p.version,
    ms(p.ms),
    weftMs ? ratio(p.ms / weftMs) : '–',
    ms(p.remote_ms),
    int(p.encoded_bytes) + (p.encoded_bytes_v1 ? ` (v1: ${int(p.encoded_bytes_v1)})` : ''),
    b(p.avg_update_bytes),
    ms(p.load_ms),
  ]);
}

const ops = wl?.ops ?? peers.find((p) => p.ops)?.ops;
const out = [];
out.push(`### ${basename(trace)} (${int(ops)} ops, final ${int(endLen)} code points)`);
out.push('');
out.push('| implementation | version | local replay ms | peer ms / weft ms | remote merge ms | encoded bytes | avg update bytes | load ms |');
out.push('|---|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows) out.push(`| ${r.join(' | ')} |`);
if (problems.length) {
  out.push('');
  for (const p of problems) out.push(`- **not measured / failed**: ${p}`);
}
process.stdout.write(out.join('\n') + '\n');
