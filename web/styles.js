/*
 * What the web map's style settings mean: the style parameters of tile and TileJSON requests,
 * the same color ramp as a Leaflet.heat gradient and as legend colors, and the legend's
 * explanation. Pure functions of the page's settings (and the server's schemes.json); loaded
 * before app.js, which uses `window.TwineStyles`.
 */
(function () {
  'use strict';

  /** simpleheat's default gradient, which is also the server's default for `smooth`. */
  const LEAFLET_HEAT_GRADIENT = { 0.4: 'blue', 0.6: 'cyan', 0.7: 'lime', 0.8: 'yellow', 1: 'red' };
  const num = Number;

  /** The style parameters of tile and TileJSON requests, for the current settings. */
  function styleQuery(settings) {
    const q = new URLSearchParams({ style: settings.style });
    if (settings.style === 'smooth') {
      for (const k of ['radius', 'blur', 'max', 'minOpacity', 'maxZoom']) q.set(k, settings[k]);
    } else if (settings.style === 'dots') {
      q.set('dotSize', settings.radius);
    } else {
      q.set('radius', settings.radius);
      q.set('scale', settings.scale);
    }
    if (settings.gradient) q.set('gradient', settings.gradient);
    else if (settings.scheme) q.set('scheme', settings.scheme);
    return q;
  }

  /** The color ramp the tiles use, as a Leaflet.heat `gradient` option. */
  function heatGradient(settings, schemes) {
    if (settings.gradient) return parseGradient(settings.gradient);
    const scheme = settings.scheme || (settings.style === 'dots' ? 'classic' : '');
    if (!scheme) return LEAFLET_HEAT_GRADIENT;
    // One stop per palette entry, where the canvas gradient samples it: (i + 0.5) / 256.
    const colors = schemes[scheme];
    const stops = {};
    colors.forEach((c, i) => { stops[(i + 0.5) / 256] = c; });
    return stops;
  }

  /** `0.4:blue,0.65:lime,1:red` -> {0.4: 'blue', ...}; commas inside `rgb(...)` belong to it. */
  function parseGradient(text) {
    const stops = {};
    let depth = 0;
    let start = 0;
    const items = [];
    for (let i = 0; i <= text.length; i++) {
      const c = text[i];
      if (c === '(') depth++;
      if (c === ')') depth--;
      if (i === text.length || (c === ',' && depth === 0)) {
        items.push(text.slice(start, i));
        start = i + 1;
      }
    }
    for (const item of items) {
      const at = item.indexOf(':');
      stops[Number(item.slice(0, at))] = item.slice(at + 1).trim();
    }
    return stops;
  }

  /** 256 CSS colors, coldest first, as the palette the tiles use (for the legend). */
  function rampColors(settings, schemes) {
    if (!settings.gradient && (settings.scheme || settings.style === 'dots')) {
      return schemes[settings.scheme || 'classic'];
    }
    const c = document.createElement('canvas');
    c.width = 1;
    c.height = 256;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    const g = ctx.createLinearGradient(0, 0, 0, 256);
    const stops = settings.gradient ? parseGradient(settings.gradient) : LEAFLET_HEAT_GRADIENT;
    for (const [t, color] of Object.entries(stops)) g.addColorStop(Number(t), color);
    ctx.fillStyle = g;
    ctx.fillRect(0, 0, 1, 256);
    const d = ctx.getImageData(0, 0, 1, 256).data;
    return Array.from({ length: 256 }, (_, i) => `rgb(${d[4 * i]},${d[4 * i + 1]},${d[4 * i + 2]})`);
  }

  /** The legend's explanation of the style at zoom `z`. */
  function styleText(settings, z) {
    const r = num(settings.radius);
    const b = num(settings.blur);
    const k = Math.max(0, Math.min(num(settings.maxZoom) - z, 12));
    const saturate = num(settings.max) * 2 ** k;
    if (settings.style === 'smooth') {
      return `Leaflet.heat's look: each point is a disc of ${r} px blurred by ${b} px; points are merged in ` +
        `${(r + b) / 2} px cells. At zoom ${z} a point weighs 1/2^${k}, so a cell of ` +
        `${saturate.toLocaleString('en')} or more points (weight ≥ max ${settings.max}) shows the hottest color.`;
    }
    if (settings.style === 'dots') {
      return `heatmap 2.2.1's look (the earlier server): each point is a ${r} px dot; ` +
        'the color shows how many dots overlap, hottest where most pile up.';
    }
    return `Kernel density: the sum of weights within ${r} px, on a ${settings.scale} scale, ` +
      'relative to one reference for the whole zoom level (never per tile): hottest at or above it.';
  }

  window.TwineStyles = { styleQuery, heatGradient, parseGradient, rampColors, styleText };
})();
