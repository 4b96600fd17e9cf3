#!/usr/bin/env node
// End-to-end test of the web map in headless Chromium (Debian's `chromium`, driven by npm
// `playwright-core`; never a downloaded browser).
//
//   node tests/browser/e2e.mjs [path/to/twine-heatmap]     (or TWINE_BIN=...)
//
// Starts `twine-heatmap serve` on the demo layers (`demo`, and `storms` with time and
// categories), a small layer across the antimeridian and one of 90 days with one category
// column (port picked by the OS, from a temporary working directory), opens the page with
// every request to another host aborted, and checks:
// tiles load and are drawn; style and scheme changes load new tiles; past the handoff zoom
// /points requests happen and Leaflet.heat's canvas is colored; requests no longer needed are
// aborted and the cap on points held is kept; zooming back shows tiles; the time window,
// playback and category checkboxes (see `timeAndCategories`); a page on another
// origin can fetch TileJSON, tiles and errors (CORS); server errors show in the page; the
// proof of concept's page (tests/browser/poc.html) shows /twine.heatmap's PNG with L.imageOverlay. It fails on any console error, page error, failed request or status >= 400 from
// the server (outside the one step that asks for an error on purpose).
//
// Visual continuity: at the handoff zoom, the same view is shot with only the tile layer and
// with only Leaflet.heat (style smooth, same options, opacity 1, no basemap, panels hidden).
// Metric: mean absolute difference of the RGB channels of the two screenshots (each layer
// composited by the browser over the page's plain background), over every pixel of the
// viewport, in % of full scale (255). It must stay under 3 %.
//
// Screenshots go to artifacts/browser/ (or $TWINE_ARTIFACTS).

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN_ARG = process.argv[2] || process.env.TWINE_BIN;
const BIN = BIN_ARG && resolve(BIN_ARG);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.TWINE_ARTIFACTS || join(ROOT, 'artifacts', 'browser');
const MAD_LIMIT_PERCENT = 3;
const VIEWPORT = { width: 1280, height: 800 };
const STEP_TIMEOUT_MS = 30_000;
const TOTAL_TIMEOUT_MS = 240_000;

const problems = []; // anything that fails the test
let activeServer = null; // killed if the test is cut short
let phase = 'start';
let expectErrors = false; // the error-display step asks for 400s on purpose

function log(...args) {
  console.log(`[e2e ${phase}]`, ...args);
}

function check(ok, message) {
  if (!ok) throw new Error(`${phase}: ${message}`);
  log(`ok: ${message}`);
}

// ------------------------------------------------------------------------------ the server

/** Starts the server on an OS-chosen port; resolves with its base URL once it listens. */
function startServer() {
  const cwd = mkdtempSync(join(tmpdir(), 'twine-e2e-'));
  // The demo layer (first in the list, so the page's default) and `wrap`, points across the
  // antimeridian; settings meant for other tests (scripts/test.sh exports DATABASE_URL)
  // must not reach this server.
  writeFileSync(join(cwd, 'wrap.csv'), antimeridianPoints());
  writeFileSync(join(cwd, 'days.csv'), dailyPoints());
  writeFileSync(join(cwd, 'config.toml'), 'demo = true\n[[layers]]\nname = "wrap"\nfile = "wrap.csv"\n' +
    '[[layers]]\nname = "series"\nfile = "days.csv"\ntime = "time"\ncategories = ["kind"]\n' +
    '[[layers]]\nname = "series-hourly"\nfile = "days.csv"\ntime = "time"\ntime_bucket = "hour"\n');
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' };
  for (const key of Object.keys(env)) if (key === 'DATABASE_URL' || key.startsWith('TWINE_')) delete env[key];
  const child = spawn(BIN, ['serve', '--bind', '127.0.0.1:0', '--config', 'config.toml'], {
    cwd, // any working directory must do: the page is embedded in the binary
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = [];
  const server = { child, output, cwd, base: null };
  activeServer = server;
  return new Promise((resolveStart, rejectStart) => {
    const timer = setTimeout(() => rejectStart(new Error(`the server did not report its address within 30 s:\n${output.join('')}`)), 30_000);
    const onData = (chunk) => {
      const text = chunk.toString().replace(/\x1b\[[0-9;]*m/g, '');
      output.push(text);
      if (output.length > 2000) output.splice(0, output.length - 2000);
      const m = !server.base && /listening.*?(127\.0\.0\.1:\d+)/.exec(text);
      if (m) {
        server.base = `http://${m[1]}`;
        clearTimeout(timer);
        resolveStart(server);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => { clearTimeout(timer); rejectStart(err); });
    child.on('exit', (code, signal) => {
      if (!server.base) {
        clearTimeout(timer);
        rejectStart(new Error(`the server exited (${code ?? signal}) before listening:\n${output.join('')}`));
      } else if (!server.stopping) {
        problems.push(`the server exited during the test (${code ?? signal})`);
      }
    });
  });
}

/**
 * CSV of 20,000 points (fixed seed) over 4.4° of longitude centred on the antimeridian, denser
 * towards it: at the handoff zoom a view centred on 180° is mostly heat, half of it from
 * points east of 180° (written as -180..-177.8), half from the west.
 */
function antimeridianPoints() {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648; // an LCG: the same points every run
    return seed / 2147483648;
  };
  const rows = ['lon,lat,weight'];
  for (let i = 0; i < 20000; i++) {
    const offset = 2.2 * random() ** 1.5;
    const lon = random() < 0.5 ? 180 - offset : -180 + offset;
    const lat = (random() - 0.5) * 3;
    rows.push(`${lon.toFixed(5)},${lat.toFixed(5)},1`);
  }
  return `${rows.join('\n')}\n`;
}

/**
 * CSV of 3,000 points over 90 days from 2024-01-01 (TileJSON bucket `day`, play step `week`)
 * with one category column, `kind`: `a`, `b` or empty, in turn.
 */
function dailyPoints() {
  const rows = ['lon,lat,time,kind'];
  const start = Date.UTC(2024, 0, 1);
  for (let i = 0; i < 3000; i++) {
    const time = new Date(start + Math.floor((i * 89.5 * 86400e3) / 3000)).toISOString();
    rows.push(`${(20 + (i % 97) / 24).toFixed(4)},${(1 + (i % 89) / 30).toFixed(4)},${time},${['a', 'b', ''][i % 3]}`);
  }
  return `${rows.join('\n')}\n`;
}

function stopServer(server) {
  if (!server) return Promise.resolve();
  server.stopping = true;
  return new Promise((done) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return done();
    const timer = setTimeout(() => { server.child.kill('SIGKILL'); }, 10_000);
    server.child.once('exit', () => { clearTimeout(timer); done(); });
    server.child.kill('SIGTERM');
  }).finally(() => rmSync(server.cwd, { recursive: true, force: true }));
}

// ------------------------------------------------------------------------------ the page

/** Resolves when the page reports nothing loading, the right layer shown and drawn. */
async function settle(page) {
  await page.waitForFunction(() => window.twine && window.twine.idle(), null, { timeout: STEP_TIMEOUT_MS });
  await page.waitForFunction(() => {
    const t = window.twine;
    if (t.state.mode !== 'tiles') return true;
    const imgs = [...t.tiles.getContainer().querySelectorAll('img')];
    return imgs.length > 0 && imgs.every((img) => img.complete);
  }, null, { timeout: STEP_TIMEOUT_MS });
  // Leaflet.heat and Leaflet draw on the next animation frames.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.waitForTimeout(150);
}

/** Tile <img> elements of the server tile layer: how many, and how many drawn 256x256 images. */
function tileImages(page) {
  return page.evaluate(() => {
    const t = window.twine;
    if (!t.tiles || !t.map.hasLayer(t.tiles)) return { onMap: false, total: 0, drawn: 0, srcs: [], colored: 0 };
    const imgs = [...t.tiles.getContainer().querySelectorAll('img.leaflet-tile')];
    const drawn = imgs.filter((img) => img.complete && img.naturalWidth === 256 && img.naturalHeight === 256);
    // Pixels with color in the tiles (same origin, so the canvas can read them).
    const c = document.createElement('canvas');
    c.width = c.height = 256;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    let colored = 0;
    for (const img of drawn) {
      ctx.clearRect(0, 0, 256, 256);
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, 256, 256).data;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) colored++;
    }
    return { onMap: true, total: imgs.length, drawn: drawn.length, srcs: drawn.map((i) => i.src), colored };
  });
}

/** Colored pixels on Leaflet.heat's canvas. */
function heatPixels(page) {
  return page.evaluate(() => {
    const t = window.twine;
    if (!t.heat || !t.map.hasLayer(t.heat)) return { onMap: false, colored: 0, total: 0 };
    const canvas = t.heat._canvas;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let colored = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] || d[i + 1] || d[i + 2])) colored++;
    return { onMap: true, colored, total: canvas.width * canvas.height };
  });
}

async function shot(page, name) {
  const path = join(ARTIFACTS, name);
  const buffer = await page.screenshot({ path });
  log(`screenshot ${path}`);
  return buffer;
}

/** Sets the view without animation; `origin` aligns the view's top-left pixel. */
function setView(page, lat, lng, zoom) {
  return page.evaluate(([lat, lng, zoom]) => window.twine.map.setView([lat, lng], zoom, { animate: false }), [lat, lng, zoom]);
}

/**
 * A view at `zoom` near (lat, lng) whose top-left corner sits on a global pixel that is a
 * multiple of `step` (plus `offset`): Leaflet.heat then clusters on the same cells as the
 * server (which aligns cells to the global pixel grid) and the two can be compared pixel for
 * pixel.
 */
function alignedView(page, lat, lng, zoom, step, offset = 0) {
  return page.evaluate(([lat, lng, zoom, step, offset]) => {
    const map = window.twine.map;
    const size = map.getSize();
    const p = map.project([lat, lng], zoom);
    const x0 = Math.round((p.x - size.x / 2) / step) * step + offset;
    const y0 = Math.round((p.y - size.y / 2) / step) * step + offset;
    const center = map.unproject([x0 + size.x / 2, y0 + size.y / 2], zoom);
    map.setView(center, zoom, { animate: false });
    const origin = map.getPixelOrigin();
    return { x0, y0, origin: [origin.x, origin.y] };
  }, [lat, lng, zoom, step, offset]);
}

/** Mean absolute RGB difference of two PNG screenshots, in % of 255, computed in the page. */
function compareShots(page, a, b) {
  return page.evaluate(async ([a, b]) => {
    const load = async (b64) => {
      // Decoded from base64 here, not fetched as a data: URL: the page's Content-Security-
      // Policy allows fetches from the server only (connect-src 'self').
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const blob = new Blob([bytes], { type: 'image/png' });
      const bitmap = await createImageBitmap(blob);
      const c = document.createElement('canvas');
      c.width = bitmap.width;
      c.height = bitmap.height;
      const ctx = c.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(bitmap, 0, 0);
      return ctx.getImageData(0, 0, c.width, c.height);
    };
    const [ia, ib] = await Promise.all([load(a), load(b)]);
    const bg = [ia.data[0], ia.data[1], ia.data[2]];
    const diff = new ImageData(ia.width, ia.height);
    let sum = 0;
    let sumCovered = 0;
    let covered = 0;
    let pixelsOver10 = 0;
    const n = ia.width * ia.height;
    for (let i = 0; i < ia.data.length; i += 4) {
      let d = 0;
      for (let k = 0; k < 3; k++) d += Math.abs(ia.data[i + k] - ib.data[i + k]);
      sum += d;
      const isBg = (img) => img.data[i] === bg[0] && img.data[i + 1] === bg[1] && img.data[i + 2] === bg[2];
      if (!isBg(ia) || !isBg(ib)) {
        covered++;
        sumCovered += d;
      }
      if (d / 3 > 25.5) pixelsOver10++;
      const v = Math.min(255, (d / 3) * 8); // amplified for the eye
      diff.data[i] = 255;
      diff.data[i + 1] = 255 - v;
      diff.data[i + 2] = 255 - v;
      diff.data[i + 3] = 255;
    }
    const c = document.createElement('canvas');
    c.width = ia.width;
    c.height = ia.height;
    c.getContext('2d').putImageData(diff, 0, 0);
    return {
      madPercent: (100 * sum) / (n * 3 * 255),
      madCoveredPercent: covered ? (100 * sumCovered) / (covered * 3 * 255) : 0,
      coveredPercent: (100 * covered) / n,
      over10Percent: (100 * pixelsOver10) / n,
      background: bg,
      diffPng: c.toDataURL('image/png').split(',')[1],
    };
  }, [a.toString('base64'), b.toString('base64')]);
}

/** Resolves when `fn()` (node side) is true; fails after STEP_TIMEOUT_MS. */
async function waitUntil(fn, what) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${phase}: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `2005-08-31` -> `2005-09-01`: the exclusive end of a window whose last day is shown. */
function dayAfter(date) {
  return new Date(Date.parse(date) + 86400e3).toISOString().slice(0, 10);
}

/** The window the page shows as text (`2005-06-01 – 2005-12-31`), as request values. */
async function shownWindow(page) {
  const text = await page.textContent('#time-window');
  const m = /^(\d{4}-\d{2}-\d{2})(?: – (\d{4}-\d{2}-\d{2}))?$/.exec(text);
  if (!m) throw new Error(`${phase}: the window text "${text}" is not "YYYY-MM-DD – YYYY-MM-DD"`);
  return { text, from: m[1], to: dayAfter(m[2] || m[1]) };
}

/** The `from` parameter of the tile layer on screen. */
function shownTileFrom(page) {
  return page.evaluate(() => new URLSearchParams(window.twine.tiles._url.split('?')[1]).get('from'));
}

/**
 * The time window and categories, built from the storms layer's TileJSON (time from 1975 to
 * 2020 in month buckets; categories `status` and `saffir_simpson`): the slider's window
 * reaches tile URLs, the tiles shown are the ones the server returns for that window, playback
 * asks for the next frame before showing it and never shows a tile layer with tiles missing,
 * checkboxes reach tile and /points URLs, the address keeps the filter across a reload.
 */
async function timeAndCategories(page, { base, origin, handoff, responses, since, failIfProblems }) {
  const tilejson = await (await fetch(`${base}/tiles/storms.json`)).json();
  const time = tilejson.heatmap.time;
  const columns = tilejson.heatmap.categories;
  check(time && time.bucket === 'month' && columns.length === 2, `storms TileJSON: time ${time.min} .. ${time.max} by ${time.bucket}, categories ${columns.map((c) => c.column)}`);
  // Every storms tile body the browser receives, by URL.
  const bodies = new Map();
  const keepBody = (res) => {
    if (new URL(res.url()).pathname.startsWith('/tiles/storms/') && res.status() === 200) bodies.set(res.url(), res.body());
  };
  page.on('response', keepBody);

  let mark = responses.length;
  await page.goto(`${base}/?layer=storms&basemap=off`);
  await settle(page);
  check(await page.isVisible('#timebar') && await page.isVisible('#time-play'), 'storms: the time window and the play button are shown');
  const boxes = await page.$$eval('#categories input[type=checkbox]', (els) => els.map((e) => ({ column: e.dataset.column, value: e.value, checked: e.checked })));
  const listed = columns.flatMap((c) => c.values.map((v) => `${c.column}=${v.value}`));
  check(boxes.length === listed.length && boxes.every((b) => b.checked && listed.includes(`${b.column}=${b.value}`)),
    `one checked box per category value (${boxes.length})`);
  let win = await shownWindow(page);
  check(win.from === time.min.slice(0, 8) + '01', `the window starts with the extent's first month (${win.text})`);
  check(since(mark).filter((r) => r.path.startsWith('/tiles/storms/')).every((r) => !/[?&](from|to|category)/.test(r.url)),
    'the whole extent with every value checked: tile URLs carry no filter');

  // The slider: June 2005 to the end of 2005 (months counted from the extent's first).
  const first = new Date(time.min);
  const months = (y, m) => (y - first.getUTCFullYear()) * 12 + (m - 1 - first.getUTCMonth());
  mark = responses.length;
  for (const [id, value] of [['#time-from', months(2005, 6)], ['#time-to', months(2006, 1)]]) {
    await page.$eval(id, (el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', { bubbles: true })); }, value);
  }
  win = await shownWindow(page);
  check(win.from === '2005-06-01' && win.to === '2006-01-01', `the sliders set the window ${win.text}`);
  await page.waitForFunction((from) => window.twine.tiles._url.includes(`from=${from}`), win.from);
  await settle(page);
  let imgs = await tileImages(page);
  const needle = `from=${win.from}&to=${win.to}`;
  check(imgs.drawn > 0 && imgs.drawn === imgs.total && imgs.srcs.every((s) => s.includes(needle)), `all ${imgs.drawn} tiles shown carry ${needle}`);
  check(imgs.colored > 0, `the window's tiles show heat (${imgs.colored} pixels)`);
  check(page.url().includes(needle), `the address keeps the window (${page.url()})`);
  await shot(page, '12-time-storms-2005.png');

  // The tiles shown are the server's tiles for that window, asked for directly.
  const style = new URL(tilejson.tiles[0].replace(/[{}]/g, '')).search.slice(1);
  let differ = 0;
  for (const src of new Set(imgs.srcs)) { // world copies show the same tiles again
    const [, z, x, y] = /\/tiles\/storms\/(\d+)\/(\d+)\/(\d+)\.png/.exec(src);
    const direct = await fetch(`${base}/tiles/storms/${z}/${x}/${y}.png?${style}&from=${win.from}&to=${win.to}`);
    const expected = Buffer.from(await direct.arrayBuffer());
    const got = bodies.get(src) && Buffer.from(await bodies.get(src));
    check(got && got.equals(expected), `tile ${z}/${x}/${y}: the ${got?.length} bytes shown equal the server's answer for the window`);
    const whole = Buffer.from(await (await fetch(`${base}/tiles/storms/${z}/${x}/${y}.png?${style}`)).arrayBuffer());
    if (!whole.equals(expected)) differ++;
  }
  check(differ > 0, `${differ} of ${new Set(imgs.srcs).size} tiles differ from the unfiltered ones (the window matters)`);
  failIfProblems();

  // Playback: the next frame's tiles are asked for while the current frame shows, and it is
  // shown only once they are in. Tile requests for any other window are held until released.
  const held = [];
  let holding = true;
  await page.route(`${origin}/tiles/storms/**`, (route) => {
    const from = new URL(route.request().url()).searchParams.get('from');
    if (holding && from !== win.from) held.push({ route, from });
    else route.continue();
  });
  // A sampler on every animation frame while playing: the tile layer shown must be on the
  // map, opaque, with all its tiles drawn.
  await page.evaluate(() => {
    window.playSamples = { frames: 0, incomplete: 0 };
    const tick = () => {
      const t = window.twine;
      if (t.player.playing) {
        window.playSamples.frames++;
        const imgs = [...t.tiles.getContainer().querySelectorAll('img.leaflet-tile')];
        const drawn = (img) => img.complete && img.naturalWidth > 0 && Number(img.style.opacity || 1) === 1;
        if (!t.map.hasLayer(t.tiles) || t.tiles.options.opacity === 0 || !imgs.length || !imgs.every(drawn)) window.playSamples.incomplete++;
      }
      if (window.playSamples) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const before = win;
  const framesBefore = await page.evaluate(() => window.twine.player.frames);
  await page.click('#time-play');
  await waitUntil(() => held.length > 0, 'the next frame\'s tile requests');
  const nextFrom = held[0].from;
  check(nextFrom === '2005-07-01', `playing asks for the next frame's tiles first (from=${nextFrom})`);
  // The frame on screen has stayed its time (or, wrongly, the next frame was shown): the
  // next frame cannot show without its tiles.
  await page.waitForFunction((n) => window.twine.player.dwelt || window.twine.player.frames > n, framesBefore);
  check((await shownWindow(page)).text === before.text && (await shownTileFrom(page)) === before.from,
    `while the next frame's ${held.length} tiles are held, the window shown stays ${before.text}`);
  holding = false;
  for (const h of held.splice(0)) await h.route.continue();
  await page.waitForFunction((text) => document.getElementById('time-window').textContent !== text, before.text);
  win = await shownWindow(page);
  check(win.from === nextFrom && win.to === '2006-02-01', `then the window moves one month, keeping its width: ${win.text}`);
  check((await shownTileFrom(page)) === nextFrom, 'the tile layer shown is the next frame\'s');
  const played = await page.evaluate(() => window.twine.player.frames);
  await page.waitForFunction((n) => window.twine.player.frames >= n + 2, played);
  await page.click('#time-play');
  await settle(page);
  const samples = await page.evaluate(() => window.playSamples);
  await page.evaluate(() => { window.playSamples = null; });
  check(samples.frames > 0 && samples.incomplete === 0, `no animation frame showed a tile layer with tiles missing (${samples.incomplete} of ${samples.frames})`);
  win = await shownWindow(page);
  const steps = (await page.evaluate(() => window.twine.player.frames)) - framesBefore;
  const expectedFrom = new Date(Date.UTC(2005, 5 + steps, 1)).toISOString().slice(0, 10);
  check(steps >= 3 && win.from === expectedFrom, `after pausing the window is ${steps} monthly frames on: ${win.text}`);
  await page.unroute(`${origin}/tiles/storms/**`);
  imgs = await tileImages(page);
  check(imgs.drawn === imgs.total && imgs.srcs.every((s) => s.includes(`from=${win.from}&to=${win.to}`)), `the paused frame's ${imgs.drawn} tiles carry its window`);

  // Categories: unchecking a value asks for the others (two columns: category.COLUMN).
  mark = responses.length;
  await page.click('#categories input[data-column="status"][value="hurricane"]');
  const kept = columns.find((c) => c.column === 'status').values.map((v) => v.value).filter((v) => v !== 'hurricane').sort();
  const category = new URLSearchParams({ 'category.status': kept.join(',') }).toString();
  await page.waitForFunction((c) => window.twine.tiles._url.includes(c), category);
  await settle(page);
  imgs = await tileImages(page);
  check(imgs.drawn > 0 && imgs.srcs.every((s) => s.includes(category) && s.includes(`from=${win.from}`)), `unchecking hurricane: all ${imgs.drawn} tiles carry ${category} and the window`);
  check(since(mark).some((r) => r.url.includes(category) && r.status === 200), 'the new tiles were answered');
  check(/status: tropical/.test(await page.textContent('#legend-filter')), `the legend says what is shown: ${await page.textContent('#legend-filter')}`);

  // The address keeps the filter: a reload shows the same window and values.
  const address = page.url();
  check(address.includes(needle.replace('2005-06-01', win.from).replace('2006-01-01', win.to)) && address.includes(category), `the address keeps the filter (${address})`);
  await page.reload();
  await settle(page);
  check((await shownWindow(page)).text === win.text, `after a reload the window is still ${win.text}`);
  check(!(await page.isChecked('#categories input[data-column="status"][value="hurricane"]')), 'after a reload hurricane is still unchecked');
  imgs = await tileImages(page);
  check(imgs.drawn > 0 && imgs.srcs.every((s) => s.includes(category) && s.includes(`from=${win.from}&to=${win.to}`)), 'after a reload the tiles carry the same filter');

  // Past the handoff zoom, /points carries the same filter.
  await setView(page, 25, -85, handoff - 1);
  await settle(page);
  mark = responses.length;
  await page.click('.leaflet-control-zoom-in');
  await page.waitForFunction((h) => window.twine.map.getZoom() === h, handoff);
  await settle(page);
  const pointsAsked = since(mark).filter((r) => r.path.startsWith(`/points/storms/${handoff}/`));
  check(pointsAsked.length > 0 && pointsAsked.every((r) => r.status === 200 && r.url.includes(category) && r.url.includes(`from=${win.from}&to=${win.to}`)),
    `${pointsAsked.length} /points requests after the handoff zoom carry the window and ${category}`);
  mark = responses.length;
  await page.click('#categories input[data-column="saffir_simpson"][value="TS"]');
  await settle(page);
  const retyped = since(mark).filter((r) => r.path.startsWith('/points/storms/'));
  check(retyped.length > 0 && retyped.every((r) => r.status === 200 && r.url.includes('category.saffir_simpson=') && r.url.includes(category)),
    `unchecking TS: ${retyped.length} new /points requests carry category.saffir_simpson`);
  await page.click('#categories input[data-column="saffir_simpson"][value="TS"]');
  await settle(page);

  // Playback above the handoff zoom: the next frame's points are fetched ahead too, and the
  // frame is drawn the moment its window shows.
  const heldPoints = [];
  let holdPoints = true;
  const heatFrom = (await shownWindow(page)).from;
  await page.route(`${origin}/points/storms/**`, (route) => {
    const from = new URL(route.request().url()).searchParams.get('from');
    if (holdPoints && from !== heatFrom) heldPoints.push({ route, from });
    else route.continue();
  });
  const heatFrames = await page.evaluate(() => window.twine.player.frames);
  await page.click('#time-play');
  await waitUntil(() => heldPoints.length > 0, 'the next frame\'s /points requests');
  await page.waitForFunction((n) => window.twine.player.dwelt || window.twine.player.frames > n, heatFrames);
  check((await shownWindow(page)).from === heatFrom && await page.evaluate((f) => window.twine.state.heatFilter.includes(`from=${f}`), heatFrom),
    `while the next frame's ${heldPoints.length} /points requests (from=${heldPoints[0].from}) are held, Leaflet.heat and the window stay at ${heatFrom}`);
  const nextHeatFrom = heldPoints[0].from;
  holdPoints = false;
  for (const h of heldPoints.splice(0)) await h.route.continue();
  await page.waitForFunction((n) => window.twine.player.frames > n, heatFrames);
  const heatShown = await page.evaluate(() => ({ mode: window.twine.state.mode, filter: window.twine.state.heatFilter, text: document.getElementById('time-window').textContent }));
  await page.click('#time-play');
  check(heatShown.mode === 'heat' && heatShown.text.startsWith(nextHeatFrom) && heatShown.filter.includes(`from=${nextHeatFrom}`),
    `the next frame (${heatShown.text}) is drawn by Leaflet.heat as its window shows`);
  await page.unroute(`${origin}/points/storms/**`);
  await settle(page);

  await setView(page, 25, -85, handoff - 2);
  await settle(page);

  // No value of a column checked: nothing shown and nothing asked (no request could mean it).
  mark = responses.length;
  for (const value of kept) await page.click(`#categories input[data-column="status"][value="${value}"]`);
  await settle(page);
  check(await page.evaluate(() => window.twine.state.mode === 'empty' && !window.twine.map.hasLayer(window.twine.tiles) && !window.twine.map.hasLayer(window.twine.heat)),
    'no status checked: no tile layer and no Leaflet.heat on the map');
  check(/nothing to show/.test(await page.textContent('#mode')), `the status line says why: "${await page.textContent('#mode')}"`);
  const asked = since(mark).filter((r) => r.path.startsWith('/tiles/storms/') || r.path.startsWith('/points/storms/'));
  check(asked.every((r) => !/category\.status=(&|$)/.test(r.url)), `no request asks for an empty status list (${asked.length} storms requests)`);
  await page.click('#categories input[data-column="status"][value="hurricane"]');
  await settle(page);
  imgs = await tileImages(page);
  check(imgs.drawn > 0 && imgs.srcs.every((s) => s.includes('category.status=hurricane')), `checking hurricane alone: ${imgs.drawn} tiles of hurricanes`);
  await shot(page, '13-time-storms-hurricanes.png');
  page.off('response', keepBody);

  // The series layer, 90 days: day buckets, weekly frames; one category column, so `category=`.
  await page.goto(`${base}/?layer=series&basemap=off`);
  await settle(page);
  check(await page.textContent('#time-step') === 'bucket day, play step week', `series: ${await page.textContent('#time-step')}`);
  check((await shownWindow(page)).text === '2024-01-01 – 2024-03-30', `series: the window is the whole extent (${(await shownWindow(page)).text})`);
  mark = responses.length;
  await page.click('#categories input[value="b"]');
  const single = new URLSearchParams({ category: ',a' }).toString(); // the empty value and `a`
  await page.waitForFunction((c) => window.twine.tiles._url.includes(c), single);
  await settle(page);
  imgs = await tileImages(page);
  check(imgs.drawn > 0 && imgs.srcs.every((s) => s.includes(single)) && since(mark).some((r) => r.url.includes(single) && r.status === 200),
    `series: unchecking b asks for the empty value and a (${single}) in all ${imgs.drawn} tiles`);
  const dayFrames = await page.evaluate(() => window.twine.player.frames);
  await page.click('#time-play');
  const firstFrame = await shownWindow(page);
  check(firstFrame.from === '2024-01-01' && firstFrame.to === '2024-01-08', `series: playing the whole extent starts with one week (${firstFrame.text})`);
  await page.waitForFunction((n) => window.twine.player.frames > n, dayFrames);
  await page.click('#time-play');
  win = await shownWindow(page);
  check(win.from === '2024-01-08' && win.to === '2024-01-15', `series: the next frame is a week on (${win.text})`);
  await settle(page);
  imgs = await tileImages(page);
  check(imgs.drawn > 0 && imgs.srcs.every((s) => s.includes(`from=${win.from}&to=${win.to}&${single}`)), `series: the ${imgs.drawn} tiles shown carry from=${win.from}&to=${win.to}&${single}`);

  // The same points in hour buckets (config time_bucket): the window's ends are timestamps.
  await page.goto(`${base}/?layer=series-hourly&basemap=off`);
  await settle(page);
  check(await page.isHidden('#categories') && await page.textContent('#time-step') === 'bucket hour, play step week',
    `series-hourly: no categories; ${await page.textContent('#time-step')}`);
  mark = responses.length;
  await page.$eval('#time-from', (el) => { el.value = '29'; el.dispatchEvent(new Event('input', { bubbles: true })); });
  const hourly = new URLSearchParams({ from: '2024-01-02T05:00:00Z' }).toString();
  await page.waitForFunction((q) => window.twine.tiles._url.includes(q), hourly);
  await settle(page);
  const hourText = await page.textContent('#time-window');
  imgs = await tileImages(page);
  check(hourText.startsWith('2024-01-02 05:00 – ') && imgs.drawn > 0 && imgs.srcs.every((s) => s.includes(hourly) && !s.includes('to=')) &&
    since(mark).some((r) => r.url.includes(hourly) && r.status === 200), `series-hourly: "${hourText}" asks for ${hourly} (the end is the extent's: no to)`);
}

// ------------------------------------------------------------------------------ the test

async function run() {
  if (!BIN) throw new Error('give the server binary: node tests/browser/e2e.mjs path/to/twine-heatmap (or TWINE_BIN)');
  mkdirSync(ARTIFACTS, { recursive: true });
  // Only this run's screenshots: earlier ones (the names this script writes) go.
  for (const name of readdirSync(ARTIFACTS)) {
    if (/^\d\d-.*\.png$|^continuity\.txt$/.test(name)) rmSync(join(ARTIFACTS, name), { force: true });
  }
  const server = await startServer();
  const base = server.base;
  const origin = new URL(base).origin;
  log(`server at ${base}`);
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);

    // Only our server is reachable: the basemap and anything else is aborted here.
    const external = new Set();
    // A second origin for the same server (localhost instead of 127.0.0.1): a page there is
    // another site's map, which may read the server only as CORS allows. Its document is a
    // real answer from the loopback address (a page made up by the test would count as
    // public, and Chromium keeps public pages from loopback addresses altogether).
    const otherOrigin = `http://localhost:${new URL(base).port}`;
    await page.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.origin === origin || url.origin === otherOrigin) return route.continue();
      external.add(url.host);
      return route.abort('blockedbyclient');
    });

    const responses = []; // {url, status, type, phase}
    let cancelled = 0;
    page.on('response', (res) => {
      const url = new URL(res.url());
      if (url.origin !== origin) return;
      const entry = { url: res.url(), path: url.pathname, status: res.status(), type: res.headers()['content-type'] || '', phase };
      responses.push(entry);
      if (res.status() >= 400 && !expectErrors) problems.push(`${phase}: HTTP ${res.status()} for ${res.url()}`);
    });
    page.on('requestfailed', (req) => {
      const url = new URL(req.url());
      if (url.origin !== origin) return;
      const error = req.failure()?.errorText || 'unknown';
      // The page cancels what it no longer needs (Leaflet's tiles left behind, aborted point
      // fetches): that is by design, not a server failure.
      if (error === 'net::ERR_ABORTED') {
        cancelled++;
        return;
      }
      problems.push(`${phase}: request failed: ${req.url()} (${error})`);
    });
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const where = msg.location()?.url || '';
      if (where && !where.startsWith(origin)) return; // the blocked basemap's load errors
      if (expectErrors && /status of 400/.test(msg.text())) return;
      problems.push(`${phase}: console error: ${msg.text()} ${where}`);
    });
    page.on('pageerror', (err) => problems.push(`${phase}: page error: ${err.message}`));

    const since = (n) => responses.slice(n);
    const failIfProblems = () => {
      if (problems.length) throw new Error(problems.join('\n'));
    };

    // 1. Tiles load and are drawn, with the (unreachable) basemap on.
    phase = 'tiles';
    let mark = responses.length;
    await page.goto(`${base}/`);
    await settle(page);
    const tilesLoaded = since(mark).filter((r) => r.path.startsWith('/tiles/demo/') && r.path.endsWith('.png'));
    check(tilesLoaded.length > 0, `${tilesLoaded.length} tile responses`);
    check(tilesLoaded.every((r) => r.status === 200 && r.type === 'image/png'), 'every tile answered 200 image/png');
    let imgs = await tileImages(page);
    check(imgs.onMap && imgs.drawn === imgs.total && imgs.drawn > 0, `${imgs.drawn}/${imgs.total} tile images drawn at 256x256`);
    check(imgs.colored > 1000, `${imgs.colored} colored tile pixels`);
    check(await page.evaluate(() => window.twine.state.mode === 'tiles'), 'the tile layer is the one shown');
    const attribution = await page.textContent('.leaflet-control-attribution');
    check(/GeoNames/.test(attribution) && /OpenStreetMap/.test(attribution), `attribution: ${attribution.trim()}`);
    check((await page.textContent('#legend-text')).length > 20, 'the legend explains the colors');
    check(await page.isHidden('#loading'), 'the loading indicator is hidden once everything loaded');
    check(await page.isHidden('#timebar') && await page.isHidden('#categories'), 'demo has no time or categories: no time window, no checkboxes');
    check(external.size > 0, `the basemap was requested and blocked (${[...external].join(', ')}) and the page still works`);
    await shot(page, '01-tiles-zoom2.png');
    failIfProblems();

    // 2. Style and scheme changes load new tiles.
    phase = 'style';
    // The last step returns to tiles the browser already holds: no new requests needed.
    for (const [control, value, needle, isNew] of [
      ['#scheme', 'fire', 'scheme=fire', true],
      ['#style', 'density', 'style=density', true],
      ['#style', 'dots', 'style=dots', true],
      ['#scheme', 'pbj', 'scheme=pbj', true],
      ['#style', 'smooth', 'style=smooth', true],
      ['#scheme', '', 'gradient=0.4:#0000ff', false],
    ]) {
      mark = responses.length;
      await page.selectOption(control, value);
      await page.waitForFunction((needle) => {
        const t = window.twine;
        return t.tiles && decodeURIComponent(t.tiles._url).includes(needle);
      }, needle);
      await settle(page);
      const fresh = since(mark).filter((r) => r.path.startsWith('/tiles/demo/') && r.path.endsWith('.png') && decodeURIComponent(r.url).includes(needle));
      if (isNew) {
        check(fresh.length > 0 && fresh.every((r) => r.status === 200 && r.type === 'image/png'), `${control}=${value || 'default'}: ${fresh.length} new tiles with ${needle}`);
      }
      imgs = await tileImages(page);
      check(imgs.drawn > 0 && imgs.drawn === imgs.total && imgs.srcs.every((s) => decodeURIComponent(s).includes(needle)),
        `${control}=${value || 'default'}: all ${imgs.drawn} shown tiles drawn, with ${needle}`);
      if (value === 'fire' || value === 'dots') await shot(page, `02-${needle.replace('=', '-')}.png`);
    }
    // The radius slider and the opacity slider.
    mark = responses.length;
    await page.$eval('#radius', (el) => { el.value = '30'; el.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.waitForFunction(() => window.twine.tiles && window.twine.tiles._url.includes('radius=30'));
    await settle(page);
    check(since(mark).some((r) => r.url.includes('radius=30') && r.status === 200), 'radius 30 tiles loaded');
    await page.$eval('#radius', (el) => { el.value = '25'; el.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.waitForFunction(() => window.twine.tiles._url.includes('radius=25'));
    await settle(page);
    await page.$eval('#opacity', (el) => { el.value = '0.5'; el.dispatchEvent(new Event('input', { bubbles: true })); });
    check(await page.evaluate(() => getComputedStyle(window.twine.tiles.getContainer()).opacity === '0.5'), 'opacity 0.5 applied to the tile layer');
    failIfProblems();

    // 3. Past the handoff zoom: points and Leaflet.heat.
    phase = 'handoff';
    const handoff = await page.evaluate(() => window.twine.state.handoff);
    log(`handoff zoom ${handoff}`);
    await setView(page, 50.5, 6, handoff - 1);
    await settle(page);
    check(await page.evaluate(() => window.twine.state.mode === 'tiles'), `tiles at zoom ${handoff - 1}`);
    await shot(page, `03-tiles-zoom${handoff - 1}.png`);
    mark = responses.length;
    await page.click('.leaflet-control-zoom-in'); // the animated zoom a user makes
    await page.waitForFunction((h) => window.twine.map.getZoom() === h, handoff);
    await settle(page);
    const pointsLoaded = since(mark).filter((r) => r.path.startsWith(`/points/demo/${handoff}/`));
    check(pointsLoaded.length > 0 && pointsLoaded.every((r) => r.status === 200 && r.type.startsWith('application/json')),
      `${pointsLoaded.length} /points/demo/${handoff}/... requests answered 200 JSON`);
    check(await page.evaluate(() => window.twine.state.mode === 'heat' && !window.twine.map.hasLayer(window.twine.tiles)), 'Leaflet.heat shown, the tile layer gone');
    let heat = await heatPixels(page);
    check(heat.onMap && heat.colored > 0.05 * heat.total, `heat canvas: ${heat.colored} of ${heat.total} pixels colored`);
    await shot(page, `04-heat-zoom${handoff}.png`);
    mark = responses.length;
    await page.click('.leaflet-control-zoom-in');
    await page.waitForFunction((h) => window.twine.map.getZoom() === h + 1, handoff);
    await settle(page);
    check(since(mark).some((r) => r.path.startsWith(`/points/demo/${handoff + 1}/`) && r.status === 200),
      `points at zoom ${handoff + 1} (${since(mark).map((r) => `${r.path} ${r.status}`).slice(0, 5).join(', ')})`);
    heat = await heatPixels(page);
    check(heat.colored > 0, `heat canvas at zoom ${handoff + 1}: ${heat.colored} pixels colored`);
    await shot(page, `05-heat-zoom${handoff + 1}.png`);

    // Requests for tiles no longer needed are aborted: slow the points down, move twice.
    let delay = 400;
    await page.route(`${origin}/points/**`, async (route) => {
      await new Promise((r) => setTimeout(r, delay));
      try {
        await route.continue();
      } catch (_) {
        // The page aborted it meanwhile.
      }
    });
    const abortedBefore = await page.evaluate(() => window.twine.state.abortedPoints);
    await setView(page, 48.85, 2.35, handoff + 2);
    await page.waitForSelector('#loading:not([hidden])', { timeout: 2000 });
    const loadingText = await page.textContent('#loading');
    check(/points/.test(loadingText), `the loading indicator shows while points are in flight ("${loadingText}")`);
    await setView(page, 41.9, 12.5, handoff + 2);
    await settle(page);
    delay = 0;
    const aborted = (await page.evaluate(() => window.twine.state.abortedPoints)) - abortedBefore;
    check(aborted > 0, `${aborted} point requests aborted after moving on`);
    const stale = await page.evaluate(() => [...window.twine.points.inflight.keys()].length);
    check(stale === 0, 'no point request left in flight');

    // The cap on points held.
    await setView(page, 50.5, 6, handoff);
    await settle(page);
    const before = await page.evaluate(() => window.twine.state.pointsHeld);
    await page.evaluate(() => window.twine.setMaxPoints(1500));
    await setView(page, 51, 7, handoff);
    await settle(page);
    const capped = await page.evaluate(() => ({ ...window.twine.state, status: document.getElementById('mode').textContent }));
    check(before > 1500, `${before} points held before the cap`);
    check(capped.pointsHeld <= 1500 && capped.droppedTiles > 0 && /left out/.test(capped.status),
      `cap 1500: ${capped.pointsHeld} points held, ${capped.droppedTiles} tiles left out ("${capped.status}")`);
    await page.evaluate(() => window.twine.setMaxPoints(500000));
    await settle(page);
    failIfProblems();

    // 4. Back below the handoff: tiles again.
    phase = 'back';
    await setView(page, 50.5, 6, handoff);
    await settle(page);
    mark = responses.length;
    await page.click('.leaflet-control-zoom-out');
    await page.waitForFunction((h) => window.twine.map.getZoom() === h - 1, handoff);
    await settle(page);
    const back = since(mark).filter((r) => r.path.startsWith(`/tiles/demo/${handoff - 1}/`));
    check(back.length > 0 && back.every((r) => r.status === 200 && r.type === 'image/png'), `${back.length} tiles at zoom ${handoff - 1}`);
    imgs = await tileImages(page);
    check(imgs.drawn > 0 && imgs.drawn === imgs.total && imgs.colored > 0, `${imgs.drawn} tile images drawn again`);
    check(await page.evaluate(() => window.twine.state.mode === 'tiles' && !window.twine.map.hasLayer(window.twine.heat)), 'tiles shown, Leaflet.heat gone');
    await shot(page, `06-tiles-again-zoom${handoff - 1}.png`);
    failIfProblems();

    // 4b. The storms layer's time window, playback and categories.
    phase = 'time';
    await timeAndCategories(page, { base, origin, handoff, responses, since, failIfProblems });
    failIfProblems();

    // 5. Visual continuity at the handoff zoom: the defaults (faint at this zoom, as
    // Leaflet.heat is with maxZoom 18), then a vivid setting with a seed color scheme.
    phase = 'continuity';
    const figures = [];
    // `vivid, unaligned` moves the view off the cell grid by a few pixels: Leaflet.heat then
    // clusters on other cells than the server, as it does for most views a user sees.
    // `antimeridian` centres the view on 180° over the `wrap` layer: Leaflet.heat must draw
    // the points of both sides (the page shifts each world copy's points), as the tiles do.
    const cases = [
      ['defaults', '', 0, [50.6, 5.5]],
      ['vivid', '&max=0.02&scheme=fire', 0, [50.6, 5.5]],
      ['vivid-unaligned', '&max=0.02&scheme=fire', 7, [50.6, 5.5]],
      ['antimeridian', '&layer=wrap&max=0.05', 0, [0, 180]],
    ];
    for (const [name, extra, offset, [lat, lng]] of cases) {
      await page.goto(`${base}/?basemap=off&opacity=1&mode=tiles${extra}`);
      await settle(page);
      await page.evaluate(() => window.twine.bare(true));
      const cell = await page.evaluate(() => (Number(window.twine.settings.radius) + Number(window.twine.settings.blur)) / 2);
      const view = await alignedView(page, lat, lng, handoff, cell, offset);
      log(`${name}: zoom ${handoff}, top-left pixel ${view.x0},${view.y0} (Leaflet's pixel origin ${view.origin}), cells of ${cell} px`);
      await settle(page);
      check(await page.evaluate(() => window.twine.state.mode === 'tiles'), `${name}: tile layer alone`);
      const tilesShot = await shot(page, `07-continuity-${name}-tiles.png`);
      await page.evaluate(() => window.twine.setMode('heat'));
      await settle(page);
      check(await page.evaluate(() => window.twine.state.mode === 'heat' && !window.twine.map.hasLayer(window.twine.tiles)), `${name}: Leaflet.heat alone`);
      const heatShot = await shot(page, `08-continuity-${name}-heat.png`);
      const cmp = await compareShots(page, tilesShot, heatShot);
      const diffPath = join(ARTIFACTS, `09-continuity-${name}-diff.png`);
      writeFileSync(diffPath, Buffer.from(cmp.diffPng, 'base64'));
      log(`screenshot ${diffPath} (|difference| x 8)`);
      const figure = `${name} (${extra.slice(1) || 'default options'}): tiles vs Leaflet.heat at zoom ${handoff}, mean absolute RGB difference ` +
        `${cmp.madPercent.toFixed(3)} % of full scale over all ${VIEWPORT.width}x${VIEWPORT.height} pixels; ` +
        `${cmp.madCoveredPercent.toFixed(3)} % over the ${cmp.coveredPercent.toFixed(1)} % of pixels where either shows heat; ` +
        `${cmp.over10Percent.toFixed(3)} % of pixels differ by more than 10 %`;
      console.log(`CONTINUITY: ${figure}`);
      figures.push(figure);
      check(cmp.coveredPercent > 20, `${name}: the view is mostly heat (${cmp.coveredPercent.toFixed(1)} % of pixels), so the figure means something`);
      check(cmp.madPercent < MAD_LIMIT_PERCENT, `${name}: MAD ${cmp.madPercent.toFixed(3)} % < ${MAD_LIMIT_PERCENT} %`);
    }
    writeFileSync(join(ARTIFACTS, 'continuity.txt'), `${figures.join('\n')}\n`);
    failIfProblems();

    // 6. Another site's page uses the server as MapLibre GL JS does: TileJSON and tiles with
    // fetch(), the tile decoded with createImageBitmap. The browser lets the page read them
    // only with CORS headers, error answers included.
    phase = 'cross-origin';
    await page.goto(`${otherOrigin}/health`);
    expectErrors = true; // the 400 below is asked for
    const cross = await page.evaluate(async (base) => {
      try {
        const tilejson = await (await fetch(`${base}/tiles/demo.json?scheme=fire`)).json();
        const url = tilejson.tiles[0].replace('{z}', '2').replace('{x}', '2').replace('{y}', '1');
        const tile = await fetch(url);
        const bitmap = await createImageBitmap(await tile.blob());
        const bad = await fetch(`${base}/tiles/demo/2/2/1.png?radius=0`);
        const error = await bad.json();
        return {
          tilejson: tilejson.tilejson, status: tile.status, width: bitmap.width,
          xcache: tile.headers.get('X-Cache'), etag: tile.headers.get('ETag'),
          badStatus: bad.status, badParam: error.parameter,
        };
      } catch (err) {
        return { failure: String(err) };
      }
    }, base);
    expectErrors = false;
    log(`from ${otherOrigin}: ${JSON.stringify(cross)}`);
    check(!cross.failure, `fetch from another origin works (${cross.failure || 'no CORS error'})`);
    check(cross.tilejson === '3.0.0', 'TileJSON read from another origin');
    check(cross.status === 200 && cross.width === 256, 'a tile fetched and decoded from another origin');
    check(cross.xcache !== null && cross.etag !== null, 'X-Cache and ETag are exposed to it');
    check(cross.badStatus === 400 && cross.badParam === 'radius', "a 400's JSON is readable from another origin");
    failIfProblems();

    // 7. A server error shows in the page.
    phase = 'errors';
    expectErrors = true;
    mark = responses.length;
    await page.goto(`${base}/?basemap=off&gradient=0.5:nocolor`);
    await page.waitForSelector('#error:not([hidden])');
    const message = await page.textContent('#error-text');
    check(/gradient/.test(message) && /CSS color/.test(message), `the page shows the server's refusal: "${message}"`);
    check(since(mark).some((r) => r.status === 400), 'the server answered 400');
    await shot(page, '10-server-error.png');
    expectErrors = false;
    failIfProblems();

    // 8. The proof of concept's client: /twine.heatmap.php?png=true, then L.imageOverlay of
    // the PNG it names. The page is written into a document of the server's origin, so it
    // loads Leaflet from the server's web map files and reads the PNG's pixels.
    phase = 'poc';
    mark = responses.length;
    await page.goto(`${base}/health`);
    await page.setContent(readFileSync(join(ROOT, 'tests/browser/poc.html'), 'utf8'));
    const poc = await page.evaluate(() => window.poc);
    log(`proof of concept's overlay: ${JSON.stringify(poc)}`);
    check(poc.filename.startsWith(`${base}/heatmap.png?layer=demo&`), `filename is this server's overlay URL (${poc.filename})`);
    check(poc.width === poc.view[0] && poc.height === poc.view[1], `the overlay is imgSize, ${poc.width} x ${poc.height}`);
    check(poc.drawn > poc.total / 100, `the overlay shows heat: ${poc.drawn} of ${poc.total} pixels not transparent`);
    check(since(mark).some((r) => r.path === '/twine.heatmap.php' && r.status === 200), '/twine.heatmap.php answered 200');
    check(since(mark).some((r) => r.path === '/heatmap.png' && r.status === 200 && r.type === 'image/png'), 'the overlay PNG loaded');
    await shot(page, '11-poc-overlay.png');
    failIfProblems();

    const points = responses.filter((r) => r.path.startsWith('/points/')).length;
    const tiles = responses.filter((r) => r.path.startsWith('/tiles/') && r.path.endsWith('.png')).length;
    log(`passed: ${tiles} tiles, ${points} point answers, ${cancelled} requests cancelled by the page, blocked hosts: ${[...external].join(', ') || 'none'}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopServer(server);
    if (problems.length) {
      console.error(`--- server output (last lines) ---\n${server.output.join('').split('\n').slice(-40).join('\n')}`);
    }
  }
}

function abandon(message) {
  console.error(message);
  if (activeServer && activeServer.child.exitCode === null) activeServer.child.kill('SIGKILL');
  process.exit(1);
}

const deadline = setTimeout(() => abandon(`FAIL: the browser test took longer than ${TOTAL_TIMEOUT_MS / 1000} s (phase ${phase})`), TOTAL_TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => abandon(`FAIL: interrupted by ${signal}`));

run()
  .then(() => {
    clearTimeout(deadline);
    if (problems.length) {
      console.error(`FAIL:\n${problems.join('\n')}`);
      process.exit(1);
    }
    console.log('PASS: the web map works in headless Chromium');
  })
  .catch((err) => {
    clearTimeout(deadline);
    console.error(`FAIL (${phase}): ${err.message}`);
    if (problems.length) console.error(problems.join('\n'));
    process.exit(1);
  });
