/*
 * The web map's points for Leaflet.heat, per tile: `/points/{layer}/{z}/{x}/{y}.json` for the
 * visible tiles plus a margin, with the request parameters of the shown filter. Loaded before
 * app.js, which creates the store with `window.TwinePoints.create(...)`.
 */
(function () {
  'use strict';

  const TILE = 256;

  /**
   * Keeps each tile's points (only those inside the tile: the server pads its answer by the
   * kernel's reach, and neighbouring tiles would count them twice), fetches the tiles of the
   * view plus a margin nearest first, aborts requests for tiles no longer needed, and never
   * holds more than `maxPoints` points.
   *
   * Tiles are held per filter (`params()`'s query string): after a filter change the old
   * filter's points stay until the new ones are in (`visibleReady`), so Leaflet.heat can keep
   * drawing them meanwhile, and they are the first to go when room is needed.
   *
   *   map, state, settings: the page's; state.tilejson gives the URL template
   *   getJson(url, what, signal), showError(message): the page's request helpers
   *   params(): URLSearchParams of the filter (time, categories, other layer filters)
   *   onChange(): called whenever points arrive, go or are asked for
   */
  function create({ map, state, settings, getJson, showError, params, onChange }) {
    const num = Number;
    const points = {
      store: new Map(), // key -> {z, x, y, filter, data, aggregated, used}
      inflight: new Map(), // key -> AbortController
      failed: new Set(),
      needed: [], // [{key, z, x, y, shift, visible, rank}]
      capped: new Set(), // needed tiles left out because of the cap
      ahead: new Map(), // key -> AbortController: the next frame's points, fetched ahead
      aheadFilter: null, // the filter of those
      filter: params().toString(),

      key(z, x, y, filter = this.filter) {
        return `${filter}|${z}/${x}/${y}`;
      },

      /** The tiles of the view and its margin at the current zoom, nearest first. */
      computeNeeded(filter = this.filter) {
        const z = Math.min(Math.round(map.getZoom()), state.tilejson.maxzoom ?? 24);
        const n = 2 ** z;
        const b = map.getPixelBounds();
        const scale = map.getZoomScale(z, map.getZoom());
        const [x0, x1] = [Math.floor((b.min.x * scale) / TILE), Math.floor((b.max.x * scale - 1) / TILE)];
        const [y0, y1] = [Math.floor((b.min.y * scale) / TILE), Math.floor((b.max.y * scale - 1) / TILE)];
        const m = Math.max(0, Math.floor(num(settings.margin)) || 0);
        const cx = (x0 + x1 + 1) / 2;
        const cy = (y0 + y1 + 1) / 2;
        const list = [];
        for (let y = Math.max(0, y0 - m); y <= Math.min(n - 1, y1 + m); y++) {
          for (let x = x0 - m; x <= x1 + m; x++) {
            const xw = ((x % n) + n) % n; // copies of the world east or west of it
            list.push({
              key: this.key(z, xw, y, filter),
              z, x: xw, y,
              shift: 360 * Math.floor(x / n),
              visible: x >= x0 && x <= x1 && y >= y0 && y <= y1,
              rank: Math.hypot(x + 0.5 - cx, y + 0.5 - cy),
            });
          }
        }
        list.sort((a, b) => a.rank - b.rank);
        return list;
      },

      update() {
        this.needed = this.computeNeeded();
        const wanted = new Set(this.needed.map((t) => t.key));
        for (const [key, controller] of this.inflight) {
          if (!wanted.has(key)) {
            controller.abort();
            this.inflight.delete(key);
            state.abortedPoints++;
          }
        }
        // Failed tiles are tried again at the next move. Tiles left out by the cap are tried
        // again only when tiles no longer needed can make room for them.
        this.failed.clear();
        for (const key of this.capped) if (!wanted.has(key)) this.capped.delete(key);
        if ([...this.store.keys()].some((key) => !wanted.has(key))) this.capped.clear();
        for (const t of this.needed) {
          const held = this.store.get(t.key);
          if (held) held.used = performance.now();
          else if (!this.inflight.has(t.key) && !this.capped.has(t.key)) this.fetch(t);
        }
        this.changed();
      },

      /** The filter changed: the next `update` asks for its points; the old ones stay for now. */
      setFilter() {
        this.filter = params().toString();
        for (const controller of this.inflight.values()) controller.abort();
        state.abortedPoints += this.inflight.size;
        this.inflight.clear();
        this.failed.clear();
        this.capped.clear();
      },

      /**
       * Fetches the visible tiles' points for the filter `q` (the next frame while playing),
       * beside the shown filter's. They are held like any tile's, so the next frame is drawn
       * at once when it becomes the shown filter.
       */
      prefetch(q) {
        this.cancelAhead();
        this.aheadFilter = q.toString();
        for (const t of this.computeNeeded(this.aheadFilter)) {
          if (t.visible && !this.store.has(t.key)) this.fetch(t, q, this.ahead);
        }
      },

      /** Whether points fetched ahead are still on their way. */
      aheadPending() {
        return this.ahead.size > 0;
      },

      cancelAhead() {
        for (const controller of this.ahead.values()) controller.abort();
        this.ahead.clear();
      },

      /** Drops the points of other filters than the shown one (once it is drawn). */
      dropStale() {
        for (const [key, held] of this.store) {
          if (held.filter !== this.filter && held.filter !== this.aheadFilter) {
            this.store.delete(key);
            state.pointsHeld -= held.data.length;
          }
        }
      },

      /** Asks for tile `t`'s points with the parameters `q`, tracked in `inflight`. */
      fetch(t, q = params(), inflight = this.inflight) {
        const controller = new AbortController();
        inflight.set(t.key, controller);
        const url = new URL(
          state.tilejson.heatmap.points.replace('{z}', t.z).replace('{x}', t.x).replace('{y}', t.y),
          location.href,
        );
        // The kernel's reach decides the server's padding; filters select the layer's points.
        url.searchParams.set('radius', settings.radius);
        url.searchParams.set('blur', settings.blur);
        if (settings.limit) url.searchParams.set('limit', settings.limit);
        for (const [k, v] of q) url.searchParams.append(k, v);
        const filter = q.toString();
        getJson(url, `points of tile ${t.z}/${t.x}/${t.y}`, controller.signal)
          .then((body) => {
            if (inflight.get(t.key) !== controller) return;
            inflight.delete(t.key);
            this.accept(t, filter, body);
          })
          .catch((err) => {
            if (err.name === 'AbortError') return;
            if (inflight.get(t.key) === controller) inflight.delete(t.key);
            if (inflight === this.inflight) this.failed.add(t.key);
            showError(err.message);
          })
          .finally(() => this.changed());
      },

      /** Stores a tile's own points, making room under the cap (farthest tiles go first). */
      accept(t, filter, body) {
        const own = body.data.filter(([lat, lng]) => {
          const p = map.project([lat, lng], t.z);
          return Math.floor(p.x / TILE) === t.x && Math.floor(p.y / TILE) === t.y;
        });
        const rank = new Map(this.needed.map((n) => [n.key, n.rank]));
        if (!this.makeRoom(own.length, rank.get(t.key) ?? Infinity)) {
          this.capped.add(t.key);
          return;
        }
        this.store.set(t.key, { ...t, filter, data: own, aggregated: body.aggregated, used: performance.now() });
        state.pointsHeld += own.length;
      },

      /**
       * Drops tiles until `extra` more points fit under the cap: tiles no longer needed first
       * (least recently used first), then needed tiles ranked farther than `rank` from the
       * centre (farthest first). False when even that is not enough.
       */
      makeRoom(extra, rank) {
        const cap = Math.max(0, num(settings.maxPoints) || 0);
        const ranks = new Map(this.needed.map((n) => [n.key, n.rank]));
        const held = [...this.store.entries()];
        const victims = [
          ...held.filter(([key]) => !ranks.has(key)).sort(([, a], [, b]) => a.used - b.used),
          ...held.filter(([key]) => ranks.get(key) > rank).sort(([ka], [kb]) => ranks.get(kb) - ranks.get(ka)),
        ];
        while (state.pointsHeld + extra > cap && victims.length) {
          const [key, victim] = victims.shift();
          this.store.delete(key);
          state.pointsHeld -= victim.data.length;
          if (ranks.has(key)) this.capped.add(key);
        }
        return state.pointsHeld + extra <= cap;
      },

      /** True when every visible tile has its points (or failed, or was left out by the cap). */
      visibleReady() {
        return this.needed.every((t) => !t.visible || this.store.has(t.key) || this.failed.has(t.key) || this.capped.has(t.key));
      },

      /** The points of the needed tiles, shifted onto the world copy they are shown on. */
      latlngs() {
        const out = [];
        for (const t of this.needed) {
          const held = this.store.get(t.key);
          if (!held) continue;
          if (t.shift === 0) {
            for (const p of held.data) out.push(p);
          } else {
            for (const [lat, lng, w] of held.data) out.push([lat, lng + t.shift, w]);
          }
        }
        return out;
      },

      cancelAll() {
        for (const controller of this.inflight.values()) controller.abort();
        state.abortedPoints += this.inflight.size;
        this.inflight.clear();
        this.changed();
      },

      clear() {
        this.cancelAll();
        this.cancelAhead();
        this.store.clear();
        this.failed.clear();
        this.capped.clear();
        state.pointsHeld = 0;
      },

      changed() {
        state.pendingPoints = this.inflight.size;
        state.droppedTiles = this.capped.size;
        onChange();
      },
    };
    return points;
  }

  window.TwinePoints = { create };
})();
