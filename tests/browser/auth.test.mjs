// The player page with viewer tokens: opened as /cameras/<camera>?token=<token>, it hands the
// token to hls.js through the playlist URL, and every request hls.js makes carries it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveCamera, playerState, waitFor } from './harness.mjs';

const TOKEN = 'browser-viewer-0123456789';

test('chromium plays a camera from the player page opened with a viewer token', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kamera-tokens-'));
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, `# browser test\n${TOKEN} live:cam\n`);
  const { worker, browser: b } = await liveCamera(t, 'cam', ['--http-tokens-file', tokens]);
  const page = await b.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`page: ${m.text()}`); });

  // Without the token the page itself is refused.
  const refused = await page.goto(`${worker.base}/cameras/cam`);
  assert.equal(refused.status(), 401);

  const media = [];
  page.on('response', (r) => {
    const url = new URL(r.url());
    if (url.pathname.startsWith('/hls/')) media.push({ url, status: r.status() });
  });
  const opened = await page.goto(`${worker.base}/cameras/cam?token=${TOKEN}`);
  assert.equal(opened.status(), 200);

  const start = await waitFor('playback to start', 30000, async () => {
    const s = await playerState(page);
    return s.currentTime > 0.5 && s;
  });
  const end = await waitFor('5 s of playback', 40000, async () => {
    const s = await playerState(page);
    return s.currentTime >= start.currentTime + 5 && s;
  });
  assert.deepEqual(end.fatal, [], `fatal hls.js errors: ${end.fatal}`);

  // hls.js fetched playlists, the init segment and parts, each with the token, none refused.
  const kinds = new Set(media.map(({ url }) => url.pathname.split('/').pop().replace(/[0-9.-]+(m4s|mp4)$/, '')));
  for (const kind of ['index', 'stream', 'init', 'part']) {
    assert.ok([...kinds].some((k) => k.startsWith(kind)), `no ${kind} request among ${[...kinds]}`);
  }
  for (const { url, status } of media) {
    assert.equal(url.searchParams.get('token'), TOKEN, `${url} lacks the token`);
    assert.ok(status !== 401 && status !== 403, `${url} answered ${status}`);
  }
  console.log(`${media.length} LL-HLS requests, all with the token; playback at ${end.currentTime.toFixed(1)} s`);
});
