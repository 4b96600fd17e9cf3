// Copies the files the page needs from node_modules into vendor/ (run by `npm run vendor`).
// Only these files are vendored and embedded in the server binary; the versions must be the
// ones pinned in package.json, so an unpinned install cannot slip in.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pinned = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies;

const files = {
  leaflet: [
    ['dist/leaflet.js', 'leaflet.js'],
    ['dist/leaflet.css', 'leaflet.css'],
    // The images leaflet.css refers to (layers control, default-icon path detection).
    ['dist/images/layers.png', 'images/layers.png'],
    ['dist/images/layers-2x.png', 'images/layers-2x.png'],
    ['dist/images/marker-icon.png', 'images/marker-icon.png'],
    ['LICENSE', 'LICENSE'],
  ],
  'leaflet.heat': [
    ['dist/leaflet-heat.js', 'leaflet-heat.js'],
    ['LICENSE', 'LICENSE'],
  ],
};

const lines = [];
for (const [pkg, list] of Object.entries(files)) {
  const src = join(here, 'node_modules', pkg);
  const { version } = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'));
  if (version !== pinned[pkg]) {
    console.error(`${pkg} ${version} is installed but package.json pins ${pinned[pkg]}; run npm ci`);
    process.exit(1);
  }
  const dest = join(here, 'vendor', pkg);
  rmSync(dest, { recursive: true, force: true });
  for (const [from, to] of list) {
    mkdirSync(dirname(join(dest, to)), { recursive: true });
    copyFileSync(join(src, from), join(dest, to));
  }
  lines.push(`${pkg} ${version}`);
}
writeFileSync(join(here, 'vendor', 'VERSIONS'), lines.join('\n') + '\n');
console.log(`vendored: ${lines.join(', ')}`);
