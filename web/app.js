/*
 * The twine-heatmap web map.
 *
 * Below the handoff zoom (TileJSON `heatmap.handoffZoom`) an L.tileLayer shows the server's
 * heatmap tiles. At and above it, L.heatLayer (Leaflet.heat 0.2.0) draws the raw points of the
 * visible tiles plus a margin, fetched from `/points/{layer}/{z}/{x}/{y}.json`. Both layers get
 * the same radius, blur, max, minOpacity, gradient and maxZoom, so the server's `smooth` tiles
 * and Leaflet.heat look alike at the switch. No heatmap is drawn here by hand.
 *
 * Settings live in the query string (shareable links), the view in the hash (#zoom/lat/lng).
 * A layer with a time column or categories (TileJSON `heatmap.time`, `heatmap.categories`)
 * gets a time window with playback and checkboxes (web/filters.js); their `from`, `to` and
 * `category` parameters go to tiles and points and into the address. Other query parameters
 * the page does not know are passed on too, so a layer's declared filters work
 * (`?layer=quakes&from=2024-01-01`, where `from` is a declared filter, not a time column).
 * Leaflet.heat's points are fetched by web/points.js.
 */
(function () {
  'use strict';

  const { styleQuery, heatGradient, rampColors, styleText } = TwineStyles;
  const OSM = {
    url: 'https://tile.openstreetmap.org/{z}/{x}/{y}.png',
    attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
  };

  /** Page settings with their defaults; every one can be given in the query string. */
  const DEFAULTS = {
    layer: '',
    style: 'smooth',
    scheme: '',
    gradient: '',
    radius: '25',
    blur: '15',
    max: '1',
    minOpacity: '0.05',
    maxZoom: '18',
    scale: 'linear',
    opacity: '0.8',
    basemap: 'osm', // `off`, `osm`, or an XYZ URL template
    mode: 'auto', // `auto`, or `tiles` / `heat` to show one layer at every zoom
    maxPoints: '500000', // most points the page holds at once
    limit: '', // points per tile before the server aggregates (empty: the server's default)
    margin: '1', // tiles of points fetched around the view
  };

  const query = new URLSearchParams(location.search);
  const settings = {};
  for (const key of Object.keys(DEFAULTS)) settings[key] = query.get(key) ?? DEFAULTS[key];
  /** Unknown parameters: layer filters, passed on to tiles and points. */
  const filters = new URLSearchParams();
  for (const [key, value] of query) if (!(key in DEFAULTS)) filters.append(key, value);

  const $ = (id) => document.getElementById(id);
  const state = {
    mode: 'none', // the layer on screen: `tiles` or `heat`
    handoff: 8,
    tilejson: null,
    tilejsonLoading: false,
    tilesLoading: false,
    pendingPoints: 0,
    pointsHeld: 0,
    pointsShown: 0,
    droppedTiles: 0,
    abortedPoints: 0, // point requests cancelled because their tiles were no longer needed
    heatFilter: null, // the filter (query string) of the points Leaflet.heat draws
    errors: [],
  };

  const map = L.map('map', { maxZoom: 19, minZoom: 1, zoomControl: true });
  // Server tiles sit above the basemap (tilePane, 200) and below Leaflet.heat's canvas
  // (overlayPane, 400).
  map.createPane('heatTiles').style.zIndex = 350;
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');

  let schemes = null; // scheme name -> 256 colors, coldest first (from /web/schemes.json)
  let tileLayer = null;
  let heatLayer = null;
  let basemap = null;
  let tileErrorShown = false;
  let viewSet = false;

  // ---------------------------------------------------------------- settings and requests

  const num = (text) => Number(text);

  /** Leaflet.heat's options, the same as the tiles' style parameters. */
  function heatOptions() {
    return {
      radius: num(settings.radius),
      blur: num(settings.blur),
      max: num(settings.max),
      minOpacity: num(settings.minOpacity),
      maxZoom: num(settings.maxZoom),
      gradient: heatGradient(settings, schemes),
      attribution: state.tilejson.attribution,
    };
  }

  /** An Error carrying the server's JSON explanation (`error`, `detail`, `parameter`). */
  async function serverError(response, what) {
    let text = `${what}: HTTP ${response.status}`;
    try {
      const body = await response.json();
      text = `${what}: ${body.error}${body.detail ? ` — ${body.detail}` : ''}`;
    } catch (_) {
      // Not JSON: the status line says enough.
    }
    const err = new Error(text);
    err.status = response.status;
    return err;
  }

  async function getJson(url, what, signal) {
    let response;
    try {
      response = await fetch(url, { signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new Error(`${what}: the server cannot be reached (${err.message})`);
    }
    if (!response.ok) throw await serverError(response, what);
    return response.json();
  }

  function showError(message) {
    state.errors.push(message);
    $('error-text').textContent = message;
    $('error').hidden = false;
  }

  function clearError() {
    $('error').hidden = true;
  }

  /** Writes the settings (non-default ones) and the view into the address bar. */
  function saveUrl() {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(settings)) if (value !== DEFAULTS[key]) q.set(key, value);
    for (const [key, value] of requestParams()) q.append(key, value);
    let hash = location.hash;
    if (viewSet) {
      const c = map.getCenter();
      hash = `#${map.getZoom()}/${c.lat.toFixed(5)}/${c.lng.toFixed(5)}`;
    }
    const text = q.toString();
    history.replaceState(null, '', `${location.pathname}${text ? `?${text}` : ''}${hash}`);
  }

  // ---------------------------------------------------------------- filters and points

  /** The time window and category controls of the shown layer (web/filters.js). */
  const filter = TwineFilters.createFilter({
    timebar: $('timebar'),
    categories: $('categories'),
    onChange: (now) => {
      player.stop();
      clearTimeout(filterTimer);
      saveUrl();
      if (now) return applyFilter(); // which redraws the legend too
      filterTimer = setTimeout(applyFilter, 250); // a slider in motion: wait for rest
      refreshLegend();
    },
  });
  let filterTimer = null;

  /** Parameters of tile and point requests: the filter's, then the page's other ones. */
  function requestParams(win) {
    const q = filter.params(win);
    for (const [key, value] of filters) q.append(key, value);
    return q;
  }

  /** Leaflet.heat's points per tile (web/points.js). */
  const points = TwinePoints.create({
    map, state, settings, getJson, showError,
    params: () => requestParams(),
    onChange: () => {
      if (wantHeat() && !filter.empty()) showHeat();
      player.poke();
      refreshStatus();
    },
  });

  // ---------------------------------------------------------------- the two layers

  function wantHeat() {
    if (!state.tilejson) return false;
    if (settings.mode === 'heat') return true;
    if (settings.mode === 'tiles') return false;
    return map.getZoom() >= state.handoff;
  }

  /**
   * Moves to Leaflet.heat once the visible tiles' points are in, so there is no blank frame.
   * After a filter change it keeps drawing the old filter's points until the new ones are in.
   */
  function showHeat() {
    if (!heatLayer) return;
    const onMap = map.hasLayer(heatLayer);
    const ready = points.visibleReady() || settings.mode === 'heat';
    if (!ready && (!onMap || state.heatFilter !== points.filter)) return;
    const data = points.latlngs();
    state.pointsShown = data.length;
    heatLayer.setLatLngs(data);
    if (state.heatFilter !== points.filter) {
      state.heatFilter = points.filter;
      points.dropStale();
    }
    if (!onMap) heatLayer.addTo(map); // draws at once, before the tiles go
    if (tileLayer && map.hasLayer(tileLayer)) map.removeLayer(tileLayer);
    state.mode = 'heat';
  }

  /** Moves to the tiles; Leaflet.heat stays until they have loaded. */
  function showTiles() {
    points.cancelAll();
    if (filter.empty()) return showNothing();
    if (!tileLayer) return;
    if (!map.hasLayer(tileLayer)) tileLayer.addTo(map);
    if (!state.tilesLoading || settings.mode === 'tiles') {
      if (heatLayer && map.hasLayer(heatLayer)) map.removeLayer(heatLayer);
      state.mode = 'tiles';
    }
  }

  /** A category column has no value checked: no layer, no request (none could be valid). */
  function showNothing() {
    points.cancelAll();
    for (const layer of [tileLayer, heatLayer]) if (layer && map.hasLayer(layer)) map.removeLayer(layer);
    state.mode = 'empty';
  }

  /** The view as a string, to tell whether the layers were updated for the current view. */
  function viewKey() {
    const b = map.getPixelBounds();
    return `${map.getZoom()}:${b.min.x},${b.min.y}:${b.max.x},${b.max.y}`;
  }

  function updateMode() {
    if (!state.tilejson) return;
    state.view = viewKey();
    if (filter.empty()) showNothing();
    else if (wantHeat()) points.update();
    else showTiles();
    player.viewChanged();
    refreshStatus();
  }

  /** A tile layer for the current style and the given request parameters. */
  function makeTileLayer(params) {
    let url = state.tilejson.tiles[0];
    if (params.toString()) url += `${url.includes('?') ? '&' : '?'}${params}`;
    const layer = L.tileLayer(url, {
      pane: 'heatTiles',
      opacity: num(settings.opacity),
      attribution: state.tilejson.attribution,
      minZoom: state.tilejson.minzoom ?? 0,
      maxZoom: 19,
      maxNativeZoom: state.tilejson.maxzoom ?? 24,
    });
    layer.on('loading', () => {
      if (layer !== tileLayer) return;
      state.tilesLoading = true;
      refreshStatus();
    });
    layer.on('load', () => {
      if (layer !== tileLayer) return;
      state.tilesLoading = false;
      if (!wantHeat()) showTiles();
      refreshStatus();
    });
    layer.on('tileerror', (e) => {
      if (layer !== tileLayer || tileErrorShown) return;
      tileErrorShown = true;
      // The <img> cannot read the body: ask again to show the server's explanation.
      getJson(e.tile.src, `tile ${e.coords.z}/${e.coords.x}/${e.coords.y}`)
        .then(() => showError(`tile ${e.coords.z}/${e.coords.x}/${e.coords.y} failed to load`))
        .catch((err) => showError(err.message));
    });
    return layer;
  }

  /** A new tile layer for the current style and filter; the old tiles stay until it loads. */
  function rebuildTiles() {
    const oldTiles = tileLayer;
    tileErrorShown = false;
    tileLayer = makeTileLayer(requestParams());
    if (oldTiles && map.hasLayer(oldTiles)) {
      if (filter.empty()) {
        map.removeLayer(oldTiles);
        return;
      }
      tileLayer.addTo(map);
      state.tilesLoading = true;
      const drop = () => {
        if (map.hasLayer(oldTiles)) map.removeLayer(oldTiles);
      };
      tileLayer.once('load', drop);
      setTimeout(drop, 5000);
    }
  }

  /** Replaces both layers after a settings change. */
  function rebuildLayers() {
    const oldHeat = heatLayer;
    rebuildTiles();
    heatLayer = L.heatLayer([], heatOptions());
    if (oldHeat && map.hasLayer(oldHeat)) {
      // Draw the new heat layer at once, then drop the old one.
      heatLayer.setLatLngs(points.latlngs());
      heatLayer.addTo(map);
      map.removeLayer(oldHeat);
    }
    setOpacity();
    player.restart(); // the next frame in the new style
    updateMode();
  }

  /** Shows the filter's points: new tiles and points (the old stay until they are in). */
  function applyFilter() {
    if (!state.tilejson) return;
    points.setFilter();
    rebuildTiles();
    updateMode();
    refreshLegend();
  }

  // ---------------------------------------------------------------- playback

  /** Plays the time window, the next frame's tiles fetched ahead (web/player.js). */
  const player = TwinePlayer.create({
    map,
    filter,
    button: $('time-play'),
    wantHeat,
    heatDrawn: () => state.mode === 'heat' && state.heatFilter === points.filter,
    points,
    params: requestParams,
    makeLayer: (win) => makeTileLayer(requestParams(win)),
    showLayer(layer) {
      tileLayer = layer;
      tileErrorShown = false;
      state.tilesLoading = false;
      tileLayer.setOpacity(num(settings.opacity));
      // The frame shown before, and any layer still waiting to give way to it.
      map.eachLayer((other) => {
        if (other instanceof L.TileLayer && other.options.pane === 'heatTiles' && other !== tileLayer) map.removeLayer(other);
      });
      saveUrl();
      points.setFilter();
      updateMode();
      refreshLegend();
    },
    showWindow() {
      saveUrl();
      applyFilter();
    },
  });

  function setOpacity() {
    $('map').style.setProperty('--heat-opacity', settings.opacity);
    if (tileLayer) tileLayer.setOpacity(num(settings.opacity));
  }

  function setBasemap() {
    const url = settings.basemap === 'osm' ? OSM.url : settings.basemap;
    if (basemap) map.removeLayer(basemap);
    basemap = null;
    if (settings.basemap !== 'off') {
      // Optional: where it cannot be reached the map keeps its plain background.
      basemap = L.tileLayer(url, { attribution: OSM.attribution, maxZoom: 19 }).addTo(map);
    }
  }

  // ---------------------------------------------------------------- settings -> server

  let tilejsonRequest = null;

  /** Asks the server for the layer's TileJSON with the chosen style: it checks every
   *  parameter (a refusal is shown in the page) and gives the tile URL and handoff zoom. */
  async function applySettings() {
    saveUrl();
    syncControls();
    if (!settings.layer) return;
    if (tilejsonRequest) tilejsonRequest.abort();
    const controller = (tilejsonRequest = new AbortController());
    state.tilejsonLoading = true;
    refreshStatus();
    let tj;
    try {
      tj = await getJson(
        `/tiles/${encodeURIComponent(settings.layer)}.json?${styleQuery(settings)}`,
        `layer ${settings.layer} with these settings`,
        controller.signal,
      );
    } catch (err) {
      if (err.name === 'AbortError') return;
      state.tilejsonLoading = false;
      if (!viewSet) setInitialView(null); // the basemap at least
      refreshStatus();
      showError(err.message);
      return;
    }
    if (controller !== tilejsonRequest) return;
    state.tilejsonLoading = false;
    clearError();
    const layerChanged = !state.tilejson || state.tilejson.name !== tj.name;
    state.tilejson = tj;
    state.handoff = tj.heatmap?.handoffZoom ?? 8;
    if (layerChanged) {
      // The controls of this layer's time and categories; the address's values set them.
      player.stop();
      filter.setLayer(tj, filters);
      points.setFilter();
      points.clear();
      saveUrl();
    }
    if (!viewSet) setInitialView(tj);
    rebuildLayers();
    refreshLegend();
  }

  function setInitialView(tj) {
    viewSet = true;
    const m = /^#(\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)$/.exec(location.hash);
    if (m) map.setView([num(m[2]), num(m[3])], num(m[1]), { animate: false });
    else if (tj && tj.center) map.setView([tj.center[1], tj.center[0]], tj.center[2], { animate: false });
    else map.setView([20, 0], 2, { animate: false });
    setBasemap(); // Leaflet layers need a view first
  }

  // ---------------------------------------------------------------- page furniture

  function syncControls() {
    for (const id of ['style', 'scheme', 'radius', 'blur', 'max', 'scale', 'opacity']) {
      $(id).value = settings[id];
    }
    if (settings.gradient) {
      let custom = $('scheme').querySelector('option[value="custom"]');
      if (!custom) {
        custom = new Option('custom gradient', 'custom');
        $('scheme').add(custom);
      }
      $('scheme').value = 'custom';
    }
    $('basemap').checked = settings.basemap !== 'off';
    $('radius-out').textContent = `${settings.radius} px`;
    $('blur-out').textContent = `${settings.blur} px`;
    $('opacity-out').textContent = `${Math.round(num(settings.opacity) * 100)} %`;
    $('radius-label').textContent = settings.style === 'dots' ? 'Dot size' : 'Radius';
    for (const el of document.querySelectorAll('.for-smooth')) el.hidden = settings.style !== 'smooth';
    for (const el of document.querySelectorAll('.for-density')) el.hidden = settings.style !== 'density';
  }

  function refreshStatus() {
    const parts = [];
    if (state.tilejsonLoading) parts.push('style');
    if (state.tilesLoading && tileLayer && map.hasLayer(tileLayer)) parts.push('tiles');
    if (state.pendingPoints) parts.push(`points (${state.pendingPoints} tiles)`);
    $('loading').hidden = parts.length === 0;
    $('loading-text').textContent = `Loading ${parts.join(', ')}…`;
    const z = Math.round(map.getZoom());
    let mode;
    if (state.mode === 'heat') {
      mode = `Leaflet.heat · zoom ${z} · ${state.pointsShown.toLocaleString('en')} points`;
      if (state.droppedTiles) mode += ` · ${state.droppedTiles} tiles left out (limit ${num(settings.maxPoints).toLocaleString('en')} points)`;
    } else if (state.mode === 'tiles') {
      mode = `server tiles · zoom ${z} · Leaflet.heat from zoom ${state.handoff}`;
    } else if (state.mode === 'empty') {
      mode = 'nothing to show: no value of a category is checked';
    } else {
      mode = '';
    }
    $('mode').textContent = mode;
    $('status').hidden = !mode && parts.length === 0;
  }

  function refreshLegend() {
    if (!schemes || !state.tilejson) return;
    const ctx = $('legend-ramp').getContext('2d');
    ctx.clearRect(0, 0, 256, 12);
    const colors = rampColors(settings, schemes);
    const floor = settings.style === 'dots' ? 1 : num(settings.minOpacity);
    for (let i = 0; i < 256; i++) {
      // smooth and density: palette entry i has opacity i / 255 (never below minOpacity where
      // there is a point); dots are opaque, their layer opacity aside.
      ctx.globalAlpha = settings.style === 'dots' ? 1 : Math.max(i / 255, floor);
      ctx.fillStyle = colors[i];
      ctx.fillRect(i, 0, 1, 12);
    }
    ctx.globalAlpha = 1;
    let text = styleText(settings, Math.round(map.getZoom()));
    if (settings.mode === 'auto') {
      text += ` From zoom ${state.handoff} on, Leaflet.heat draws the raw points in the browser` +
        (settings.style === 'smooth' ? ' with the same options.' : ' in the smooth look.');
    }
    $('legend-text').textContent = text;
    $('legend-filter').textContent = filter.describe();
    $('legend-filter').hidden = !$('legend-filter').textContent;
  }

  function bindControls() {
    const panel = $('controls');
    L.DomEvent.disableClickPropagation(panel);
    L.DomEvent.disableScrollPropagation(panel);
    for (const id of ['legend', 'error', 'status', 'timebar']) {
      L.DomEvent.disableClickPropagation($(id));
      L.DomEvent.disableScrollPropagation($(id));
    }
    $('error-close').addEventListener('click', clearError);
    let timer = null;
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(applySettings, 250);
    };
    $('layer').addEventListener('change', (e) => {
      settings.layer = e.target.value;
      // The address's time and category values were the old layer's.
      for (const key of [...filters.keys()]) if (/^(from|to|category(\..*)?)$/.test(key)) filters.delete(key);
      applySettings();
    });
    $('style').addEventListener('change', (e) => { settings.style = e.target.value; applySettings(); });
    $('scheme').addEventListener('change', (e) => {
      if (e.target.value === 'custom') return;
      settings.scheme = e.target.value;
      settings.gradient = '';
      applySettings();
    });
    $('scale').addEventListener('change', (e) => { settings.scale = e.target.value; applySettings(); });
    for (const id of ['radius', 'blur']) {
      $(id).addEventListener('input', (e) => { settings[id] = e.target.value; syncControls(); later(); });
    }
    $('max').addEventListener('change', (e) => { settings.max = e.target.value; applySettings(); });
    $('opacity').addEventListener('input', (e) => {
      settings.opacity = e.target.value;
      setOpacity();
      syncControls();
      saveUrl();
    });
    $('basemap').addEventListener('change', (e) => {
      const given = query.get('basemap');
      settings.basemap = e.target.checked ? (given && given !== 'off' ? given : 'osm') : 'off';
      if (viewSet) setBasemap();
      saveUrl();
    });
  }

  async function start() {
    bindControls();
    syncControls();
    setOpacity();
    map.on('moveend', () => {
      if (!viewSet) return;
      updateMode();
      refreshLegend();
      saveUrl();
    });
    let layers;
    try {
      [layers, schemes] = await Promise.all([
        getJson('/layers', 'layers'),
        getJson('/web/schemes.json', 'color schemes').then((d) => d.schemes),
      ]);
    } catch (err) {
      setInitialView(null);
      showError(err.message);
      return;
    }
    for (const layer of layers) {
      $('layer').add(new Option(`${layer.name} (${layer.count.toLocaleString('en')} points)`, layer.name));
    }
    if (!layers.length) {
      setInitialView(null);
      showError('The server has no layers.');
      return;
    }
    if (!settings.layer) settings.layer = layers[0].name;
    if (!layers.some((l) => l.name === settings.layer)) {
      // Unknown layer: the server's 404 explains it in the page.
      $('layer').add(new Option(settings.layer, settings.layer));
    }
    $('layer').value = settings.layer;
    await applySettings();
  }

  /** For the browser test and for debugging in the console. */
  window.twine = {
    map,
    state,
    settings,
    points,
    filter,
    player,
    get tiles() { return tileLayer; },
    get heat() { return heatLayer; },
    /** `auto`, or `tiles` / `heat` to show one layer whatever the zoom. */
    setMode(mode) {
      settings.mode = mode;
      saveUrl();
      updateMode();
      refreshLegend();
    },
    /** Changes the cap on points held, dropping tiles at once if needed. */
    setMaxPoints(n) {
      settings.maxPoints = String(n);
      saveUrl();
      points.makeRoom(0, -1); // every tile may go, farthest first
      updateMode();
    },
    /** Hides the panels and controls (to compare the layers' pixels). */
    bare(on) { document.body.classList.toggle('bare', on); },
    /** True when nothing is loading and the layer on screen is the one the zoom asks for. */
    idle() {
      const want = filter.empty() ? 'empty' : wantHeat() ? 'heat' : 'tiles';
      return Boolean(state.tilejson) && !state.tilejsonLoading && !state.pendingPoints &&
        !map._animatingZoom && state.view === viewKey() &&
        !(want === 'tiles' && state.tilesLoading) && state.mode === want;
    },
  };

  start();
})();
