// viewer.js: shows the screencast on a canvas. Frames arrive as binary
// WebSocket messages (layout in server.lua): a table of tiles and one zlib
// stream of their R,G,B,X pixels, inflated by the browser's own
// DecompressionStream.
//
// Frames are painted strictly in order. A gap in the sequence numbers (the
// server dropped frames because this viewer fell behind) or a fresh start
// makes the viewer ask for a keyframe ("key") and paint it whole; a
// keyframe that arrives while the picture is already complete is skipped.
// window.screencast holds counters that tests and benchmarks read.
"use strict";
(() => {
  const DELTA = 1, KEYFRAME = 2;
  const canvas = document.getElementById("screen");
  const g = canvas.getContext("2d");
  const statusLine = document.getElementById("status");
  const stats = window.screencast = {
    frames: 0, keyframes: 0, skipped: 0, gaps: 0, seq: -1, synced: false,
    latency: null, latencies: [], painted: 0, opened: false, closed: null,
  };
  let asked = 0;
  let chain = Promise.resolve();

  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";

  function askKeyframe() {
    const now = performance.now();
    if (ws.readyState === WebSocket.OPEN && now - asked > 300) {
      asked = now;
      ws.send("key");
    }
  }

  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8ClampedArray(await new Response(stream).arrayBuffer());
  }

  function parse(buf) {
    const v = new DataView(buf);
    const frame = {
      kind: v.getUint8(0), seq: v.getUint32(1, true), captured: v.getFloat64(5, true),
      width: v.getUint16(13, true), height: v.getUint16(15, true), tiles: [],
    };
    const count = v.getUint32(17, true);
    let at = 21;
    for (let i = 0; i < count; i++, at += 8) {
      frame.tiles.push({ x: v.getUint16(at, true), y: v.getUint16(at + 2, true),
                         w: v.getUint16(at + 4, true), h: v.getUint16(at + 6, true) });
    }
    const len = v.getUint32(at, true);
    frame.data = new Uint8Array(buf, at + 4, len);
    return frame;
  }

  async function paint(frame) {
    if (canvas.width !== frame.width || canvas.height !== frame.height) {
      canvas.width = frame.width;
      canvas.height = frame.height;
    }
    const pixels = await inflate(frame.data);
    const need = frame.tiles.reduce((n, t) => n + t.w * t.h * 4, 0);
    if (pixels.length !== need) throw new Error(`frame ${frame.seq}: ${pixels.length} bytes of pixels, expected ${need}`);
    for (let k = 3; k < pixels.length; k += 4) pixels[k] = 255; // X is padding: opaque
    let at = 0;
    for (const t of frame.tiles) {
      const size = t.w * t.h * 4;
      g.putImageData(new ImageData(pixels.subarray(at, at + size), t.w, t.h), t.x, t.y);
      at += size;
    }
    stats.painted++;
    if (frame.kind === DELTA) {
      // A keyframe may be one made earlier and sent again: its capture
      // time says nothing about this viewer's delay.
      stats.latency = Date.now() / 1000 - frame.captured;
      stats.latencies.push(stats.latency);
      if (stats.latencies.length > 1000) stats.latencies.shift();
    }
  }

  function receive(buf) {
    const frame = parse(buf);
    if (frame.kind === KEYFRAME) {
      stats.keyframes++;
      const complete = stats.synced && frame.seq === stats.seq;
      stats.seq = frame.seq;
      if (complete) { stats.skipped++; return null; }
      stats.synced = true;
      return frame;
    }
    stats.frames++;
    if (stats.synced && frame.seq !== stats.seq + 1) {
      stats.gaps++;
      stats.synced = false;
    }
    stats.seq = frame.seq;
    if (!stats.synced) askKeyframe();
    return frame; // painted even when out of sync: most of it is current
  }

  ws.onopen = () => { stats.opened = true; askKeyframe(); };
  ws.onmessage = (e) => {
    const frame = receive(e.data);
    if (frame) chain = chain.then(() => paint(frame)).catch((err) => console.error(err));
  };
  ws.onclose = (e) => {
    stats.closed = e.code;
    statusLine.textContent = `disconnected (${e.code})`;
  };
  // Until a keyframe came, ask again now and then (the first request may
  // have raced the subscription).
  setInterval(() => {
    if (!stats.synced) askKeyframe();
    if (ws.readyState === WebSocket.OPEN) {
      const ms = stats.latency === null ? "–" : Math.round(stats.latency * 1000);
      statusLine.textContent = `${canvas.width}×${canvas.height} · frame ${stats.seq} · ` +
        `${stats.keyframes} keyframes · ${stats.gaps} skips · latency ${ms} ms`;
    }
  }, 500);
})();
