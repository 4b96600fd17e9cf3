/*
 * The web map's playback of the time window: frame after frame, one play step apart, with the
 * next frame's tiles fetched ahead so that no frame is blank. Loaded before app.js, which
 * creates the player with `window.TwinePlayer.create(...)`.
 */
(function () {
  'use strict';

  /** The least time a frame stays on screen while playing. */
  const FRAME_MS = 700;
  /** Leaflet fades a loaded tile in over 200 ms; a prefetched layer is shown after that. */
  const FADE_MS = 250;

  /**
   * Plays the filter's window: each frame moves it one play step (web/filters.js `next`),
   * the same width, back to the start after the end. The next frame's tiles load in a hidden
   * tile layer (opacity 0, over the view) while the current frame shows; it is swapped in
   * only once its tiles have loaded and faded in, and the current frame has shown FRAME_MS,
   * so playback never shows a blank or half-loaded frame. With Leaflet.heat on screen (above
   * the handoff zoom) the visible tiles' points of the next frame are fetched ahead the same
   * way, and the frame changes once they are in and the current frame is drawn.
   *
   *   map, filter, button: the Leaflet map, the page's filter, the play/pause button
   *   wantHeat(): whether the view shows Leaflet.heat rather than tiles
   *   heatDrawn(): whether Leaflet.heat draws the points of the shown filter
   *   points: the page's points store (web/points.js), to fetch the next frame's points
   *   params(win): the request parameters for the window `win`
   *   makeLayer(win): a tile layer (not on the map) for the window `win`
   *   showLayer(layer): makes the prefetched layer the shown one (the window is already set)
   *   showWindow(): asks for the shown window's tiles or points the usual way
   */
  function create({ map, filter, button, wantHeat, heatDrawn, points, params, makeLayer, showLayer, showWindow }) {
    const player = {
      playing: false,
      next: null, // {win, layer, loaded}: the frame being prepared
      dwell: null, // the timer of the frame on screen
      dwelt: false, // whether the frame on screen has shown FRAME_MS
      heat: false, // whether the next frame is prepared for Leaflet.heat
      frames: 0, // frames shown since the page opened

      toggle() {
        if (this.playing) this.stop();
        else this.start();
      },

      start() {
        if (!filter.axis || filter.empty() || this.playing) return;
        this.playing = true;
        this.sync();
        if (filter.wholeExtent()) {
          // Stepping the whole extent would show the same frame: play one step's width.
          filter.setWindow(filter.axis.firstFrame());
          showWindow();
        }
        this.prepare();
      },

      stop() {
        if (!this.playing) return;
        this.playing = false;
        this.discard();
        this.sync();
      },

      sync() {
        button.textContent = this.playing ? '❚❚ Pause' : '▶ Play';
        button.setAttribute('aria-pressed', String(this.playing));
      },

      discard() {
        clearTimeout(this.dwell);
        points.cancelAhead();
        if (this.next?.layer && map.hasLayer(this.next.layer)) map.removeLayer(this.next.layer);
        this.next = null;
      },

      /** Starts the dwell of the frame on screen and fetches the next frame's tiles. */
      prepare() {
        this.discard();
        if (!this.playing) return;
        const next = (this.next = { win: filter.axis.next(filter.window), layer: null, loaded: false });
        this.dwelt = false;
        this.dwell = setTimeout(() => {
          this.dwelt = true;
          this.poke();
        }, FRAME_MS);
        this.heat = wantHeat();
        if (this.heat) {
          points.prefetch(params(next.win));
          return;
        }
        next.layer = makeLayer(next.win);
        next.layer.setOpacity(0);
        // Loaded means loaded for the view now shown: a move starts another round of loading.
        let round = 0;
        next.layer.on('loading', () => {
          round++;
          next.loaded = false;
        });
        next.layer.on('load', () => {
          const loaded = round;
          setTimeout(() => {
            if (loaded !== round || this.next !== next) return;
            next.loaded = true;
            this.poke();
          }, FADE_MS);
        });
        next.layer.addTo(map);
      },

      /** Shows the next frame if it is ready (called whenever tiles or points arrive). */
      poke() {
        const next = this.next;
        if (!this.playing || !next || !this.dwelt) return;
        if (next.layer ? !next.loaded : !heatDrawn() || points.aheadPending()) return;
        this.next = null;
        filter.setWindow(next.win);
        this.frames++;
        if (next.layer) showLayer(next.layer);
        else showWindow();
        this.prepare();
      },

      /** The style changed: prepare the next frame again, in the new style. */
      restart() {
        if (this.playing) this.prepare();
      },

      /** The view moved: between tiles and Leaflet.heat, the next frame is prepared anew. */
      viewChanged() {
        if (this.playing && this.heat !== wantHeat()) this.prepare();
      },
    };
    button.addEventListener('click', () => player.toggle());
    return player;
  }

  window.TwinePlayer = { create };
})();
