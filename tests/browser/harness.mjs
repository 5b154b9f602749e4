// Shared pieces of the browser tests: a real kamera-worker on free ports, an ffmpeg publisher
// of a pre-encoded clip, and headless Debian chromium driven by playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function workerBin() {
  if (process.env.KAMERA_WORKER_BIN) return process.env.KAMERA_WORKER_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(root, 'target');
  const bin = join(target, 'debug/kamera-worker');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run cargo build --workspace --bins`);
  return bin;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

/** Polls `check` every 100 ms until it returns a truthy value; throws after `ms`. */
export async function waitFor(what, ms, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A 640x360 25 fps clip with AAC, GOP 1 s, encoded once and cached under target/. */
export function clip() {
  const dir = join(root, 'target/kamera-test-clips');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'browser-640x360-25fps-g25.flv');
  if (!existsSync(path)) {
    const tmp = `${path}.tmp${process.pid}`;
    execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25:duration=10',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=10',
      '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-bf', '0',
      '-g', '25', '-keyint_min', '25', '-sc_threshold', '0', '-b:v', '800k',
      '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', tmp]);
    execFileSync('mv', [tmp, path]);
  }
  return path;
}

/** Starts a worker on free ports; `extra` adds flags (e.g. `--http-tokens-file`). */
export async function startWorker(extra = []) {
  const rtmp = await freePort();
  const http = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'kamera-browser-'));
  const log = openSync(join(dir, 'worker.log'), 'w');
  const child = spawn(workerBin(), [
    '--rtmp-listen', `127.0.0.1:${rtmp}`, '--http-listen', `127.0.0.1:${http}`,
    '--data-dir', join(dir, 'data'), '--no-recording',
    '--hls-js', join(root, 'node_modules/hls.js/dist/hls.min.js'), ...extra,
  ], { stdio: ['ignore', log, log] });
  const base = `http://127.0.0.1:${http}`;
  await waitFor('the worker to be ready', 20000, async () => {
    try { return (await fetch(`${base}/readyz`)).ok; } catch { return false; }
  });
  return { child, base, rtmpUrl: (key) => `rtmp://127.0.0.1:${rtmp}/live/${key}`, dir };
}

export function publish(url) {
  return spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1',
    '-i', clip(), '-c', 'copy', '-f', 'flv', url], { stdio: 'ignore' });
}

export async function stop(child) {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
  });
}

/** What the player page exposes: playback position, latency and hls.js errors. */
export function playerState(page) {
  return page.evaluate(() => {
    const v = document.getElementById('video');
    const k = window.kamera;
    return {
      currentTime: v.currentTime,
      paused: v.paused,
      readyState: v.readyState,
      latency: k.hls ? k.hls.latency : null,
      // Wall clock minus the PROGRAM-DATE-TIME of each frame presented, and stall durations (s).
      frameLatency: k.latency.slice(),
      stalls: k.stalls.slice(),
      fatal: k.fatal.slice(),
      errors: k.errors.slice(),
    };
  });
}
