#!/usr/bin/env node
// Replays one sequential editing trace on other text CRDTs ("peers"), for a
// side-by-side comparison with `weft bench text` (build/release/weft).
//
//   node bench/peers/run.mjs TRACE.json.gz [--peer NAME] [--runs N]
//        [--runs-automerge N] [--timeout SECONDS]
//
// Prints one JSON object per peer per line. Without --peer every peer runs in
// its own child process (a fresh heap), one after another; --peer NAME runs
// one peer in this process. Peers: diamond-types, json-joy, loro, yjs,
// automerge. Install them first: npm install --prefix bench/peers
//
// What is measured, per peer (each in fresh documents, median of the runs):
//   ms            local replay: every patch of the trace is its own local edit
//                 (one transaction / change / commit / flushed patch), on one
//                 document; excludes gunzip and JSON parsing. The final text
//                 must equal endContent, or the peer reports an error instead.
//   remote_ms     the whole history, encoded on the document that made it, in
//                 the peer's update/sync form (see remote_form), merged into
//                 a fresh document (decoding included), and the text read out
//                 once.
//   load_ms       the peer's standard full-document encoding (encoded_form)
//                 loaded into a fresh document, and the text read out once
//                 (some peers decode lazily; reading the text makes the
//                 numbers comparable).
//   encoded_bytes size of that full-document encoding (with history).
//   avg_update_bytes  mean size of the per-edit update message (update_form),
//                 collected in a separate, untimed replay.
// Positions in the traces count code points. diamond-types counts code
// points too; yjs, loro, automerge and json-joy count UTF-16 units, which are
// the same while no character lies outside the BMP, so a trace with such
// characters is reported as an error for those peers.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';

const HERE = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(HERE, 'package.json'));

const PEERS = ['diamond-types', 'json-joy', 'loro', 'yjs', 'automerge'];
const PACKAGE = {
  'diamond-types': 'diamond-types-node',
  'json-joy': 'json-joy',
  loro: 'loro-crdt',
  yjs: 'yjs',
  automerge: '@automerge/automerge',
};

function usage(msg) {
  if (msg) process.stderr.write(`run.mjs: ${msg}\n`);
  process.stderr.write(
    'usage: node bench/peers/run.mjs TRACE.json.gz [--peer NAME] [--runs N] ' +
      '[--runs-automerge N] [--timeout SECONDS]\n' +
      `peers: ${PEERS.join(', ')}\n`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  const a = { trace: null, peer: null, runs: 3, runsAutomerge: null, timeout: 600 };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${s} needs a value`);
      return argv[++i];
    };
    if (s === '--peer') a.peer = next();
    else if (s === '--runs') a.runs = Number(next());
    else if (s === '--runs-automerge') a.runsAutomerge = Number(next());
    else if (s === '--timeout') a.timeout = Number(next());
    else if (s === '-h' || s === '--help') usage();
    else if (s.startsWith('--')) usage(`unknown option ${s}`);
    else if (a.trace === null) a.trace = s;
    else usage(`unexpected argument ${s}`);
  }
  if (!a.trace) usage('no trace given');
  if (!Number.isInteger(a.runs) || a.runs < 1) usage('--runs must be a positive integer');
  if (a.runsAutomerge !== null && (!Number.isInteger(a.runsAutomerge) || a.runsAutomerge < 1))
    usage('--runs-automerge must be a positive integer');
  if (a.peer !== null && !PEERS.includes(a.peer)) usage(`unknown peer ${a.peer}`);
  return a;
}

function version(peer) {
  try {
    const pj = require.resolve(`${PACKAGE[peer]}/package.json`);
    return JSON.parse(readFileSync(pj, 'utf8')).version;
  } catch {
    // some packages do not export ./package.json; find it next to the entry
    try {
      let d = dirname(require.resolve(PACKAGE[peer]));
      for (let k = 0; k < 6; k++, d = dirname(d)) {
        try {
          const pj = JSON.parse(readFileSync(join(d, 'package.json'), 'utf8'));
          if (pj.name === PACKAGE[peer]) return pj.version;
        } catch {}
      }
    } catch {}
    return null;
  }
}

const median = (v) => {
  const s = [...v].sort((x, y) => x - y);
  return s[s.length >> 1];
};
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const gc = () => globalThis.gc && globalThis.gc();
const now = () => performance.now();

// ---------------------------------------------------------------- adapters
// Each adapter: local(P) -> doc (timed); reference(P) -> {doc, bytes, count};
// text(doc); save(doc) -> Uint8Array; history(doc) -> message(s);
// merge(msg) -> doc; load(bytes) -> doc; free(doc).
// P = {pos: Int32Array, del: Int32Array, ins: string[], n}.

async function adapter(peer) {
  switch (peer) {
    case 'diamond-types': {
      const { Doc } = require('diamond-types-node');
      const replay = (P, perOp) => {
        const d = new Doc('a');
        for (let i = 0; i < P.n; i++) {
          const v = perOp ? d.getLocalVersion() : null;
          if (P.del[i]) d.del(P.pos[i], P.del[i]);
          if (P.ins[i]) d.ins(P.pos[i], P.ins[i]);
          if (perOp) perOp(d.getPatchSince(v).length);
        }
        return d;
      };
      return {
        utf16: false,
        encoded_form: 'Doc.toBytes()',
        remote_form: 'Doc.toBytes() of the editing doc, new Doc().mergeBytes()',
        update_form: 'getPatchSince(version before the op) after each op',
        load_form: 'Doc.fromBytes() + get()',
        local: (P) => replay(P, null),
        reference(P) {
          let bytes = 0, count = 0;
          const doc = replay(P, (b) => { bytes += b; count++; });
          return { doc, bytes, count };
        },
        text: (d) => d.get(),
        save: (d) => d.toBytes(),
        history: (d) => d.toBytes(),
        merge(msg) { const d = new Doc('b'); d.mergeBytes(msg); return d; },
        load: (b) => Doc.fromBytes(b, 'c'),
        free: (d) => d.free(),
      };
    }
    case 'json-joy': {
      const { Model } = require('json-joy/lib/json-crdt');
      const { Patch } = require('json-joy/lib/json-crdt-patch');
      const replay = (P, onPatch) => {
        const m = Model.create(undefined, 1000001);
        m.api.root('');
        const setup = m.api.flush();
        if (onPatch) onPatch(setup, true);
        const s = m.api.str([]);
        for (let i = 0; i < P.n; i++) {
          if (P.del[i]) s.del(P.pos[i], P.del[i]);
          if (P.ins[i]) s.ins(P.pos[i], P.ins[i]);
          const p = m.api.flush();
          if (onPatch) onPatch(p, false);
        }
        return m;
      };
      return {
        utf16: true,
        encoded_form: 'Model.toBinary() (structural binary)',
        remote_form: 'the binary patch of every op (Patch.toBinary), decoded and applied to a fresh Model',
        update_form: 'Patch.toBinary() of the patch flushed after each op',
        load_form: 'Model.fromBinary() + view()',
        local: (P) => replay(P, null),
        reference(P) {
          let bytes = 0, count = 0;
          const patches = [];
          const doc = replay(P, (p, setup) => {
            const b = p.toBinary();
            patches.push(b);
            if (!setup) { bytes += b.length; count++; }
          });
          doc.__patches = patches;
          return { doc, bytes, count };
        },
        text: (m) => m.view(),
        save: (m) => m.toBinary(),
        history: (m) => m.__patches,
        merge(list) {
          const m = Model.create(undefined, 1000002);
          for (let i = 0; i < list.length; i++) m.applyPatch(Patch.fromBinary(list[i]));
          return m;
        },
        load: (b) => Model.fromBinary(b),
        free: () => {},
      };
    }
    case 'loro': {
      const { LoroDoc } = require('loro-crdt');
      const replay = (P, onUpdate) => {
        const d = new LoroDoc();
        d.setPeerId(1n);
        let unsub = null;
        if (onUpdate) unsub = d.subscribeLocalUpdates(onUpdate);
        const t = d.getText('text');
        for (let i = 0; i < P.n; i++) {
          if (P.del[i]) t.delete(P.pos[i], P.del[i]);
          if (P.ins[i]) t.insert(P.pos[i], P.ins[i]);
          d.commit();
        }
        if (unsub) unsub();
        return d;
      };
      return {
        utf16: true,
        encoded_form: "export({mode:'snapshot'})",
        remote_form: "export({mode:'update'}) of the editing doc, imported into a new LoroDoc",
        update_form: 'subscribeLocalUpdates bytes per commit (one commit per op)',
        load_form: 'LoroDoc.fromSnapshot() + getText().toString()',
        local: (P) => replay(P, null),
        reference(P) {
          let bytes = 0, count = 0;
          const doc = replay(P, (u) => { bytes += u.length; count++; });
          return { doc, bytes, count };
        },
        text: (d) => d.getText('text').toString(),
        save: (d) => d.export({ mode: 'snapshot' }),
        history: (d) => d.export({ mode: 'update' }),
        merge(msg) { const d = new LoroDoc(); d.import(msg); return d; },
        load: (b) => LoroDoc.fromSnapshot(b),
        free: (d) => d.free(),
      };
    }
    case 'yjs': {
      const Y = await import(require.resolve('yjs').replace(/yjs\.cjs$/, 'yjs.mjs'));
      const replay = (P, onUpdate) => {
        const d = new Y.Doc();
        d.clientID = 1;
        if (onUpdate) d.on('update', onUpdate);
        const t = d.getText('text');
        for (let i = 0; i < P.n; i++) {
          const pos = P.pos[i], del = P.del[i], ins = P.ins[i];
          d.transact(() => {
            if (del) t.delete(pos, del);
            if (ins) t.insert(pos, ins);
          });
        }
        if (onUpdate) d.off('update', onUpdate);
        return d;
      };
      return {
        utf16: true,
        encoded_form: 'encodeStateAsUpdateV2 (v1 size in encoded_bytes_v1)',
        remote_form: 'encodeStateAsUpdate (v1) of the editing doc, applyUpdate into a new Y.Doc',
        update_form: "doc.on('update') v1 update per transaction (one per op)",
        load_form: 'applyUpdateV2 into a new Y.Doc + toString()',
        local: (P) => replay(P, null),
        reference(P) {
          let bytes = 0, count = 0;
          const doc = replay(P, (u) => { bytes += u.length; count++; });
          return { doc, bytes, count };
        },
        text: (d) => d.getText('text').toString(),
        save: (d) => Y.encodeStateAsUpdateV2(d),
        extra: (d) => ({ encoded_bytes_v1: Y.encodeStateAsUpdate(d).length }),
        history: (d) => Y.encodeStateAsUpdate(d),
        merge(msg) { const d = new Y.Doc(); Y.applyUpdate(d, msg); return d; },
        load(b) { const d = new Y.Doc(); Y.applyUpdateV2(d, b); return d; },
        free: (d) => d.destroy(),
      };
    }
    case 'automerge': {
      const A = await import('@automerge/automerge');
      const replay = (P, onChange) => {
        let d = A.change(A.init({ actor: '0a' }), (x) => { x.text = ''; });
        for (let i = 0; i < P.n; i++) {
          const pos = P.pos[i], del = P.del[i], ins = P.ins[i];
          d = A.change(d, (x) => A.splice(x, ['text'], pos, del, ins));
          if (onChange) onChange(A.getLastLocalChange(d).length);
        }
        return d;
      };
      return {
        utf16: true,
        encoded_form: 'Automerge.save()',
        remote_form: 'Automerge.save() of the editing doc, loadIncremental into a new doc',
        update_form: 'getLastLocalChange() after each change (one change per op)',
        load_form: 'Automerge.load() + doc.text',
        local: (P) => replay(P, null),
        reference(P) {
          let bytes = 0, count = 0;
          const doc = replay(P, (b) => { bytes += b; count++; });
          return { doc, bytes, count };
        },
        text: (d) => d.text,
        save: (d) => A.save(d),
        history: (d) => A.save(d),
        merge: (msg) => A.loadIncremental(A.init({ actor: '0b' }), msg),
        load: (b) => A.load(b),
        free: (d) => A.free(d),
      };
    }
  }
  throw new Error(`no adapter for ${peer}`);
}

// ---------------------------------------------------------------- one peer

function loadTrace(file) {
  const j = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8'));
  if (j.kind === 'concurrent') throw new Error('concurrent traces are not supported (sequential only)');
  if (j.startContent) throw new Error('traces with non-empty startContent are not supported');
  let n = 0;
  for (const t of j.txns) n += t.patches.length;
  const P = { pos: new Int32Array(n), del: new Int32Array(n), ins: new Array(n), n };
  let k = 0;
  for (const t of j.txns)
    for (const [pos, del, ins] of t.patches) {
      P.pos[k] = pos;
      P.del[k] = del;
      P.ins[k] = ins || '';
      k++;
    }
  const astral = /[\u{10000}-\u{10FFFF}]/u;
  P.astral = P.ins.some((s) => astral.test(s));
  return { P, end: j.endContent };
}

function check(what, got, end) {
  if (got === end) return;
  const a = [...got], b = [...end];
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  throw new Error(
    `${what}: final text differs from endContent (length ${a.length} vs ${b.length} code points, first difference at ${i})`,
  );
}

async function runPeer(peer, file, runs) {
  const out = { peer, package: PACKAGE[peer], version: version(peer), trace: basename(file) };
  let impl;
  try {
    impl = await adapter(peer);
  } catch (e) {
    return { ...out, error: `cannot load ${PACKAGE[peer]}: ${e.message}` };
  }
  const { P, end } = loadTrace(file);
  out.ops = P.n;
  out.runs = runs;
  if (P.astral && impl.utf16)
    return { ...out, error: 'trace has characters outside the BMP; UTF-16 positions would differ from code points (not converted)' };

  // untimed reference replay: per-op update sizes, then the encodings
  const ref = impl.reference(P);
  check('reference replay', impl.text(ref.doc), end);
  const enc = impl.save(ref.doc);
  const hist = impl.history(ref.doc);
  Object.assign(out, impl.extra ? impl.extra(ref.doc) : {});

  const ms = [], rms = [], lms = [];
  for (let r = 0; r < runs; r++) {
    gc();
    let t0 = now();
    const d = impl.local(P);
    ms.push(now() - t0);
    check(`local run ${r + 1}`, impl.text(d), end);
    impl.free(d);
  }
  for (let r = 0; r < runs; r++) {
    gc();
    const t0 = now();
    const d = impl.merge(hist);
    const s = impl.text(d);
    rms.push(now() - t0);
    check(`remote merge run ${r + 1}`, s, end);
    impl.free(d);
  }
  for (let r = 0; r < runs; r++) {
    gc();
    const t0 = now();
    const d = impl.load(enc);
    const s = impl.text(d);
    lms.push(now() - t0);
    check(`load run ${r + 1}`, s, end);
    impl.free(d);
  }
  impl.free(ref.doc);
  return {
    ...out,
    ok: true,
    ms: round(median(ms)),
    ms_runs: ms.map((x) => round(x, 1)),
    remote_ms: round(median(rms)),
    remote_ms_runs: rms.map((x) => round(x, 1)),
    load_ms: round(median(lms)),
    load_ms_runs: lms.map((x) => round(x, 1)),
    encoded_bytes: enc.length,
    avg_update_bytes: ref.count ? round(ref.bytes / ref.count, 2) : null,
    update_count: ref.count,
    final_len: [...end].length,
    final_sha256: createHash('sha256').update(end, 'utf8').digest('hex'),
    encoded_form: impl.encoded_form,
    remote_form: impl.remote_form,
    update_form: impl.update_form,
    load_form: impl.load_form,
  };
}

// ---------------------------------------------------------------- main

const args = parseArgs(process.argv.slice(2));
const runsFor = (p) => (p === 'automerge' && args.runsAutomerge ? args.runsAutomerge : args.runs);

if (args.peer) {
  let res;
  try {
    res = await runPeer(args.peer, args.trace, runsFor(args.peer));
  } catch (e) {
    res = { peer: args.peer, package: PACKAGE[args.peer], version: version(args.peer),
            trace: basename(args.trace), error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(res) + '\n');
  process.exit(res.error ? 1 : 0);
} else {
  let failed = 0;
  for (const peer of PEERS) {
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', '--max-old-space-size=8192', fileURLToPath(import.meta.url), args.trace,
       '--peer', peer, '--runs', String(runsFor(peer))],
      { encoding: 'utf8', timeout: args.timeout * 1000, maxBuffer: 64 << 20 },
    );
    const line = (child.stdout || '').split('\n').find((l) => l.startsWith('{'));
    if (line) {
      process.stdout.write(line + '\n');
      if (JSON.parse(line).error) failed++;
    } else {
      failed++;
      const why = child.error
        ? child.error.code === 'ETIMEDOUT' ? `timed out after ${args.timeout} s` : child.error.message
        : `exited with ${child.status ?? child.signal}: ${(child.stderr || '').trim().split('\n').slice(-3).join(' | ')}`;
      process.stdout.write(JSON.stringify({ peer, package: PACKAGE[peer], version: version(peer),
                                            trace: basename(args.trace), error: why }) + '\n');
    }
  }
  process.exit(failed ? 1 : 0);
}
