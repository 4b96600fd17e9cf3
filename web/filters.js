/*
 * The web map's time window and category filters, built from a layer's TileJSON alone
 * (`heatmap.time {min, max, bucket}`, `heatmap.categories [{column, values}]`): the controls,
 * the window's calendar arithmetic (snapped to the TileJSON bucket, in UTC) and the request
 * parameters they make (`from`, `to`, `category`, `category.COLUMN`). Nothing here knows a
 * layer by name. Loaded before app.js, which uses `window.TwineFilters`.
 */
(function () {
  'use strict';

  const HOUR = 3600e3;
  const DAY = 24 * HOUR;

  // ---------------------------------------------------------------- calendar arithmetic (UTC)

  /** The start of the `unit` (hour, day, week from Monday, month) holding instant `ms`. */
  function floorTo(ms, unit) {
    if (unit === 'hour') return Math.floor(ms / HOUR) * HOUR;
    const day = Math.floor(ms / DAY) * DAY;
    if (unit === 'day') return day;
    if (unit === 'week') return day - ((new Date(day).getUTCDay() + 6) % 7) * DAY;
    const d = new Date(ms);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  }

  /** `ms` moved by `n` units; months keep the day of the month (the last day when shorter). */
  function addUnits(ms, unit, n) {
    if (unit === 'hour') return ms + n * HOUR;
    if (unit === 'day') return ms + n * DAY;
    if (unit === 'week') return ms + 7 * n * DAY;
    const d = new Date(ms);
    const month = d.getUTCMonth() + n;
    const last = new Date(Date.UTC(d.getUTCFullYear(), month + 1, 0)).getUTCDate();
    return Date.UTC(d.getUTCFullYear(), month, Math.min(d.getUTCDate(), last),
      d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds());
  }

  /** Whole buckets from `start` (a bucket start) to `ms` (rounded down). */
  function bucketsBetween(start, ms, unit) {
    if (unit === 'month') {
      const a = new Date(start);
      const b = new Date(ms);
      return (b.getUTCFullYear() - a.getUTCFullYear()) * 12 + b.getUTCMonth() - a.getUTCMonth();
    }
    const len = { hour: HOUR, day: DAY, week: 7 * DAY }[unit];
    return Math.floor((ms - start) / len);
  }

  const pad = (n) => String(n).padStart(2, '0');

  /** An instant of the page's address, read as the server reads it: UTC when no offset. */
  function parseInstant(text) {
    const t = text.trim();
    if (/^\d{4}-\d{2}-\d{2}$/.test(t) || /(Z|[+-]\d{2}:?\d{2})$/i.test(t)) return Date.parse(t);
    return Date.parse(`${t.replace(' ', 'T')}Z`);
  }

  function isoDate(ms) {
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  }

  /**
   * The play step: `day` when the extent spans at most 60 days, `week` up to two years (730
   * days), `month` beyond, and never finer than the bucket (an hour bucket over a week steps
   * by day, a week bucket over a month by week, a month bucket always by month).
   */
  function playStep(bucket, spanMs) {
    const order = ['hour', 'day', 'week', 'month'];
    const bySpan = spanMs <= 60 * DAY ? 'day' : spanMs <= 730 * DAY ? 'week' : 'month';
    return order[Math.max(order.indexOf(bySpan), order.indexOf(bucket))];
  }

  /**
   * A layer's time axis: bucket starts from the bucket holding `min` (`start`) to the one after
   * the bucket holding `max` (`end`, exclusive), so `[start, end)` holds every point. Windows
   * are `{from, to}` in ms, half-open, both on bucket starts.
   */
  function timeAxis(time) {
    const min = Date.parse(time.min);
    const max = Date.parse(time.max);
    if (!Number.isFinite(min) || !Number.isFinite(max) || !['hour', 'day', 'week', 'month'].includes(time.bucket)) {
      return null;
    }
    const bucket = time.bucket;
    const start = floorTo(min, bucket);
    const end = addUnits(floorTo(max, bucket), bucket, 1);
    const axis = {
      bucket,
      start,
      end,
      count: bucketsBetween(start, end, bucket), // slider positions 0..count
      step: playStep(bucket, max - min),
      at: (i) => addUnits(start, bucket, i),
      index: (ms) => Math.max(0, Math.min(axis.count, bucketsBetween(start, floorTo(ms, bucket), bucket))),
      /** `ms` on a bucket start within the extent: down for a window's start, up for its end. */
      snap(ms, up) {
        const i = axis.index(ms);
        return axis.at(up && axis.at(i) < ms ? Math.min(axis.count, i + 1) : i);
      },
      /** A request value: a date, or a UTC timestamp for hour buckets. */
      param: (ms) => (bucket === 'hour' ? new Date(ms).toISOString().replace('.000Z', 'Z') : isoDate(ms)),
      /** The window as text, both ends included: `2005-08-01 – 2005-08-31`. */
      describe({ from, to }) {
        const show = (ms) => (bucket === 'hour' ? `${isoDate(ms)} ${pad(new Date(ms).getUTCHours())}:00` : isoDate(ms));
        const last = bucket === 'hour' ? to - HOUR : to - DAY;
        const [a, b] = [show(from), show(last)];
        return a === b ? a : `${a} – ${b}`;
      },
      /**
       * The window one play step later, the same width (in steps where the step is a calendar
       * month); back to the first window of that width when it would pass the end.
       */
      next({ from, to }) {
        const moved = { from: axis.snap(addUnits(from, axis.step, 1), false), to: axis.snap(addUnits(to, axis.step, 1), true) };
        if (addUnits(to, axis.step, 1) <= end && moved.to > moved.from && moved.from > from) return moved;
        let first = axis.snap(start + (to - from), true);
        if (first <= start) first = axis.at(1);
        return { from: start, to: first };
      },
      /** The first window playback shows when the window is the whole extent: one step. */
      firstFrame() {
        const to = axis.snap(addUnits(start, axis.step, 1), true);
        return { from: start, to: to > start ? to : axis.at(1) };
      },
    };
    return axis;
  }

  // ---------------------------------------------------------------- the filter and its controls

  /** Whether a column's boxes select less than everything (then it needs a parameter). */
  const filtering = (col) => col.checked.size !== col.values.length || col.values.some((v) => !col.checked.has(v.value));

  /** The checked values a request can name: a value holding a comma cannot be asked for. */
  const askable = (col) => [...col.checked].filter((v) => !v.includes(',')).sort();

  const element = (tag, props = {}, children = []) => {
    const el = Object.assign(document.createElement(tag), props);
    for (const child of children) el.append(child);
    return el;
  };

  /**
   * The filter of the shown layer. `onChange(now)` is called when the user changes it (`now`
   * false while a slider moves: the caller may wait for it to rest).
   *
   *   timebar:    the element holding the time controls (hidden without `heatmap.time`)
   *   categories: the element holding one fieldset of checkboxes per category column
   */
  function createFilter({ timebar, categories, onChange }) {
    const $ = (sel) => timebar.querySelector(sel);
    const filter = {
      axis: null,
      window: null, // {from, to}
      columns: [], // [{column, key, values: [{value, count}], checked: Set, boxes: [input]}]

      /**
       * Builds the controls for a layer's TileJSON. `given` holds the page's other query
       * parameters: the ones the filter owns for this layer (`from`, `to`, `category`,
       * `category.COLUMN`) are taken out of it and set the controls.
       */
      setLayer(tilejson, given) {
        const heatmap = tilejson.heatmap || {};
        this.axis = heatmap.time ? timeAxis(heatmap.time) : null;
        this.window = null;
        if (this.axis) {
          const from = given.has('from') ? parseInstant(given.get('from')) : NaN;
          const to = given.has('to') ? parseInstant(given.get('to')) : NaN;
          given.delete('from');
          given.delete('to');
          this.window = {
            from: Number.isFinite(from) ? this.axis.snap(from, false) : this.axis.start,
            to: Number.isFinite(to) ? this.axis.snap(to, true) : this.axis.end,
          };
          if (this.window.to <= this.window.from) this.window = { from: this.axis.start, to: this.axis.end };
        }
        const cats = heatmap.categories || [];
        this.columns = cats.map((c) => {
          const key = cats.length === 1 ? 'category' : `category.${c.column}`;
          let checked = new Set(c.values.map((v) => v.value));
          for (const k of [key, `category.${c.column}`]) {
            if (given.has(k)) {
              checked = new Set(given.get(k).split(','));
              given.delete(k);
            }
          }
          return { column: c.column, key, values: c.values, checked, boxes: [] };
        });
        this.build();
      },

      build() {
        timebar.hidden = !this.axis;
        if (this.axis) {
          for (const id of ['#time-from', '#time-to']) {
            const input = $(id);
            input.min = '0';
            input.max = String(this.axis.count);
            input.step = '1';
          }
          $('#time-step').textContent = `bucket ${this.axis.bucket}, play step ${this.axis.step}`;
          this.sync();
        }
        categories.replaceChildren();
        categories.hidden = this.columns.length === 0;
        for (const col of this.columns) {
          const set = element('fieldset', { className: 'category' }, [element('legend', { textContent: col.column })]);
          col.boxes = col.values.map((v) => {
            // A value holding a comma cannot be asked for (the server splits on commas).
            const box = element('input', { type: 'checkbox', value: v.value, checked: col.checked.has(v.value), disabled: v.value.includes(',') });
            box.dataset.column = col.column;
            box.addEventListener('change', () => {
              if (box.checked) col.checked.add(v.value);
              else col.checked.delete(v.value);
              onChange(true);
            });
            const name = v.value === '' ? '(empty)' : v.value;
            set.append(element('label', { className: 'inline' }, [box, ` ${name} `, element('small', { textContent: v.count.toLocaleString('en') })]));
            return box;
          });
          categories.append(set);
        }
      },

      /** Shows the window in the sliders and as text. */
      sync() {
        if (!this.axis) return;
        $('#time-from').value = String(this.axis.index(this.window.from));
        $('#time-to').value = String(this.axis.index(this.window.to));
        $('#time-window').textContent = this.axis.describe(this.window);
      },

      /** Sets the window (snapped, at least one bucket wide) and shows it. */
      setWindow(win) {
        const from = this.axis.snap(win.from, false);
        let to = this.axis.snap(win.to, true);
        if (to <= from) to = this.axis.at(this.axis.index(from) + 1);
        this.window = { from, to };
        this.sync();
      },

      /** Moves one slider (`from` or `to`, at bucket index `i`); the other gives way. */
      slide(which, i) {
        const at = this.axis.at(i);
        if (which === 'from') {
          const from = Math.min(at, this.axis.at(this.axis.count - 1));
          this.setWindow({ from, to: Math.max(this.window.to, this.axis.at(this.axis.index(from) + 1)) });
        } else {
          const to = Math.max(at, this.axis.at(1));
          this.setWindow({ from: Math.min(this.window.from, this.axis.at(this.axis.index(to) - 1)), to });
        }
      },

      wholeExtent() {
        return !this.axis || (this.window.from === this.axis.start && this.window.to === this.axis.end);
      },

      /** True when a column has no value checked: nothing can match, nothing is asked. */
      empty() {
        return this.columns.some((c) => filtering(c) && askable(c).length === 0);
      },

      /**
       * The request parameters for `win` (default: the shown window): an end at the extent's
       * edge is left out, and a column with every listed value checked adds nothing.
       */
      params(win = this.window) {
        const q = new URLSearchParams();
        if (this.axis) {
          if (win.from > this.axis.start) q.set('from', this.axis.param(win.from));
          if (win.to < this.axis.end) q.set('to', this.axis.param(win.to));
        }
        for (const col of this.columns) {
          if (filtering(col)) q.set(col.key, askable(col).join(','));
        }
        return q;
      },

      /** One line for the legend: which points the map shows. */
      describe() {
        const parts = [];
        if (this.axis && !this.wholeExtent()) parts.push(`time ${this.axis.describe(this.window)} (UTC)`);
        for (const col of this.columns) {
          if (!filtering(col)) continue;
          const shown = askable(col).map((v) => (v === '' ? '(empty)' : v));
          parts.push(`${col.column}: ${shown.length ? shown.join(', ') : 'none'}`);
        }
        return parts.length ? `Only points with ${parts.join('; ')}.` : '';
      },
    };

    for (const which of ['from', 'to']) {
      $(`#time-${which}`).addEventListener('input', (e) => {
        filter.slide(which, Number(e.target.value));
        onChange(false);
      });
    }
    return filter;
  }

  window.TwineFilters = { createFilter, timeAxis, playStep, floorTo, addUnits };
})();
