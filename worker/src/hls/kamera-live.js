// Kamera's live-edge helpers for any HLS player in a browser (served at /assets/kamera-live.js).
//
// kameraLive.watch(video, k, pdtOf): for every frame presented, pushes onto k.latency the wall
//   clock at display minus the frame's EXT-X-PROGRAM-DATE-TIME (pdtOf(mediaTime) -> Unix ms, from
//   the player), and onto k.stalls the duration of each stall after playback began (seconds).
// kameraLive.steer(video, k, targetS): plays at up to 1.25x while the median latency of the last
//   12 frames is over targetS + 0.1 s and at least 0.3 s is buffered, else at 1x; never slower.
//   More than 2 s behind (a player that started at the window's start, or after a long stall),
//   it jumps to the target instead, at most once every 5 s. Players' own catch-up measures from
//   the playlist's edge and starts late or not at all.
(function () {
  function watch(video, k, pdtOf) {
    let stalledAt = null, started = false;
    video.addEventListener('playing', function () {
      started = true;
      if (stalledAt !== null) { k.stalls.push((performance.now() - stalledAt) / 1000); stalledAt = null; }
    });
    video.addEventListener('waiting', function () {
      if (started && stalledAt === null) stalledAt = performance.now();
    });
    if (!video.requestVideoFrameCallback) return;
    const onFrame = function (_, meta) {
      const pdt = pdtOf(meta.mediaTime);
      if (pdt !== null && pdt !== undefined) {
        k.latency.push((performance.timeOrigin + meta.expectedDisplayTime - pdt) / 1000);
        if (k.latency.length > 3000) k.latency.splice(0, 1000);
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  function steer(video, k, targetS) {
    let jumpedAt = -Infinity;
    setInterval(function () {
      const recent = k.latency.slice(-12).sort(function (a, b) { return a - b; });
      if (!recent.length || video.paused) return;
      const behind = recent[recent.length >> 1] - targetS;
      if (behind > 2 && performance.now() - jumpedAt > 5000) {
        jumpedAt = performance.now();
        k.latency.length = 0;
        video.currentTime += behind;
        return;
      }
      const b = video.buffered;
      const ahead = b.length ? b.end(b.length - 1) - video.currentTime : 0;
      const rate = behind > 0.1 && ahead > 0.3 ? Math.min(1.25, 1 + behind / 2) : 1;
      if (Math.abs(video.playbackRate - rate) > 0.01) video.playbackRate = rate;
    }, 250);
  }

  window.kameraLive = { watch: watch, steer: steer };
})();
