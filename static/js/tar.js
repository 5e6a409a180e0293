// A tar archive of picked files (POSIX ustar; a PAX header carries a path that does not fit
// the 100-byte name field or is not ASCII), built as a Blob that refers to the files rather
// than copying them into memory. The API reads exactly this (and gzip or zstd around it).

const BLOCK = 512;
const MAX_OCTAL_SIZE = 8 ** 11 - 1; // what the 12-byte size field holds (8 GiB)
const encoder = new TextEncoder();

// Archives the API takes as they are, rather than packed as one file.
export const ARCHIVE_NAME = /\.(tar|tgz|tar\.gz|tar\.zst|tar\.zstd|tzst)$/i;

function octal(value, width) {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name, size, type) {
  const block = new Uint8Array(BLOCK);
  const put = (text, offset, length) => block.set(encoder.encode(text).subarray(0, length), offset);
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(Math.floor(Date.now() / 1000), 12), 136, 12);
  block.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
  put(type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  const sum = block.reduce((a, b) => a + b, 0);
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return block;
}

// One PAX record: "<length> <key>=<value>\n", the length counting itself.
function paxRecord(key, value) {
  const rest = encoder.encode(` ${key}=${value}\n`).length;
  let length = rest + 1;
  while (String(length).length + rest !== length) length = String(length).length + rest;
  return `${length} ${key}=${value}\n`;
}

function padding(size) {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

// items: [{ path, file }] with paths relative to the site's root ("css/site.css").
export function packTar(items) {
  const parts = [];
  for (const { path, file } of items) {
    if (file.size > MAX_OCTAL_SIZE) throw new Error(`${path} is too large for a tar archive.`);
    const bytes = encoder.encode(path);
    // eslint-disable-next-line no-control-regex
    if (bytes.length > 100 || /[^\x20-\x7e]/.test(path)) {
      const record = encoder.encode(paxRecord('path', path));
      parts.push(header('PaxHeader', record.length, 'x'), record, padding(record.length));
    }
    parts.push(header(path, file.size, '0'), file, padding(file.size));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  return new Blob(parts, { type: 'application/x-tar' });
}
