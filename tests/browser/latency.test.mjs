// Latency as a viewer sees it: headless chromium plays a camera with hls.js (the worker's player
// page) and with Shaka (the settings of docs/players.md), and for every frame presented takes
// the wall clock minus that frame's EXT-X-PROGRAM-DATE-TIME, not the player's own estimate.
// The bounds are ones a busy 2-core CI machine holds (publisher, worker and browser share it);
// the quiet-machine figures are in the README.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { liveCamera, playerState, waitFor } from './harness.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// The measured window (KAMERA_LATENCY_SECONDS=60 for the README's quiet-machine figures).
const MEASURE_MS = 1000 * Number(process.env.KAMERA_LATENCY_SECONDS || 30);
// CI bounds: p50 of frame latency (s) and stalls in the window. Measured on 2 cores at load
// average 8 (CI and other builds beside): hls.js p50 0.88 s and no stall in every run; Shaka
// p50 0.79-1.10 s, no stall in seven runs of eight, up to 3 stalls (2 s) and half the frames presented
// in one run with container builds beside it.
const BOUNDS = { 'hls.js': { p50: 1.5, stalls: 1 }, shaka: { p50: 2.0, stalls: 5 } };

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function measure(page, player) {
  await waitFor(`${player} to start playing`, 30000, async () => (await playerState(page)).currentTime > 0.5);
  // Settle: steady state is what is measured, so the window opens once the player has caught
  // up (median of the last 25 frames within 0.4 s of the 0.8 s target) or after 30 s anyway.
  const t0 = Date.now();
  await waitFor(`${player} to settle`, 40000, async () => {
    const recent = (await playerState(page)).frameLatency.slice(-25).sort((a, b) => a - b);
    return (recent.length === 25 && recent[12] < 1.2) || Date.now() - t0 > 30000;
  });
  console.log(`${player}: settled after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const before = await playerState(page);
  await new Promise((r) => setTimeout(r, MEASURE_MS));
  const after = await playerState(page);
  const samples = after.frameLatency.slice(before.frameLatency.length).sort((a, b) => a - b);
  // A stall is a wait a viewer can see (100 ms or more); shorter waits are counted apart.
  const waits = after.stalls.slice(before.stalls.length);
  const stalls = waits.filter((s) => s >= 0.1);
  const figures = {
    frames: samples.length,
    p50: quantile(samples, 0.5), p90: quantile(samples, 0.9), max: samples.at(-1),
    stalls: stalls.length, stalledS: stalls.reduce((a, b) => a + b, 0), shortWaits: waits.length - stalls.length,
    advanced: after.currentTime - before.currentTime,
  };
  console.log(`${player}: frame latency p50 ${figures.p50?.toFixed(3)} s, p90 ${figures.p90?.toFixed(3)} s, ` +
    `max ${figures.max?.toFixed(3)} s over ${figures.frames} frames; ${figures.stalls} stalls ` +
    `(${figures.stalledS.toFixed(2)} s) and ${figures.shortWaits} waits under 100 ms in ${MEASURE_MS / 1000} s; ` +
    `played ${figures.advanced.toFixed(1)} s`);
  assert.deepEqual(after.fatal, [], `${player}: fatal errors: ${after.fatal}`);
  // At 25 fps a player presents hundreds of frames in 30 s; a loaded machine drops some.
  assert.ok(figures.frames >= MEASURE_MS / 1000 * 5, `${player}: only ${figures.frames} frames presented`);
  assert.ok(figures.p50 > 0, `${player}: a frame shown before its program date-time (${figures.p50} s)`);
  assert.ok(figures.p50 <= BOUNDS[player].p50, `${player}: p50 ${figures.p50} s > ${BOUNDS[player].p50} s`);
  assert.ok(figures.stalls <= BOUNDS[player].stalls, `${player}: ${figures.stalls} stalls > ${BOUNDS[player].stalls}`);
  return figures;
}

test('hls.js and Shaka play within a bounded distance of the wall clock', async (t) => {
  const { worker, browser: b } = await liveCamera(t);

  const hlsjs = await b.newPage();
  await hlsjs.goto(`${worker.base}/cameras/cam`);
  await measure(hlsjs, 'hls.js');
  await hlsjs.close();

  const shaka = await b.newPage();
  shaka.on('console', (m) => { if (m.type() === 'error') console.log(`shaka page: ${m.text()}`); });
  await shaka.route(`${worker.base}/test/shaka.html*`, (route) =>
    route.fulfill({ contentType: 'text/html', body: readFileSync(join(root, 'tests/browser/shaka.html')) }));
  await shaka.route(`${worker.base}/test/shaka-player.compiled.js`, (route) =>
    route.fulfill({ contentType: 'text/javascript',
      body: readFileSync(join(root, 'node_modules/shaka-player/dist/shaka-player.compiled.js')) }));
  await shaka.goto(`${worker.base}/test/shaka.html?camera=cam`);
  await measure(shaka, 'shaka');
});
