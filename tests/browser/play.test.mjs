// A real browser plays Kamera's LL-HLS: headless Debian chromium opens the player page,
// hls.js plays in low-latency mode, and keeps playing across a publisher reconnect.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, publish, stop, browser, playerState, waitFor } from './harness.mjs';

test('chromium plays a camera with hls.js and rides out a publisher reconnect', async (t) => {
  const worker = await startWorker();
  let publisher = publish(worker.rtmpUrl('cam'));
  const b = await browser();
  t.after(async () => {
    await b.close();
    await stop(publisher);
    await stop(worker.child);
  });
  const page = await b.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`page: ${m.text()}`); });
  await page.goto(`${worker.base}/cameras/cam`);

  // Playback starts, then advances for 10 s without a fatal hls.js error.
  const start = await waitFor('playback to start', 30000, async () => {
    const s = await playerState(page);
    return s.currentTime > 0.5 && s;
  });
  const latencies = [];
  const end = await waitFor('10 s of playback', 40000, async () => {
    const s = await playerState(page);
    if (Number.isFinite(s.latency)) latencies.push(s.latency);
    return s.currentTime >= start.currentTime + 10 && s;
  });
  assert.deepEqual(end.fatal, [], `fatal hls.js errors: ${end.fatal}`);
  latencies.sort((a, b) => a - b);
  const p50 = latencies[Math.floor(latencies.length / 2)];
  console.log(`hls.js live latency: p50 ${p50?.toFixed(3)} s, max ${latencies.at(-1)?.toFixed(3)} s over ${latencies.length} samples`);
  assert.ok(Number.isFinite(p50), 'hls.js reported no live latency');

  // The publisher goes away and comes back: a discontinuity, a new init; playback goes on.
  await stop(publisher);
  const before = (await playerState(page)).currentTime;
  publisher = publish(worker.rtmpUrl('cam'));
  const after = await waitFor('playback to continue after the reconnect', 40000, async () => {
    const s = await playerState(page);
    return s.currentTime >= before + 5 && !s.paused && s;
  });
  console.log(`after reconnect: currentTime ${after.currentTime.toFixed(1)} s, latency ${after.latency?.toFixed(3)} s, errors: ${after.errors.join(' ') || 'none'}, fatal: ${after.fatal.join(' ') || 'none'}`);
});
