// Drives @ngraveio/bc-ur, an independent implementation of Uniform Resources (BCR-2020-005), for
// Tessera's interoperability tests and the frames-needed benchmark of airgap-bundle.
//
// Reads one request a line on stdin and answers each with one line on stdout; fields are
// separated by single spaces (UR text and hex contain none):
//
//   version
//     -> 1.1.13
//   decode PART PART …
//     feeds the parts in order to a fresh URDecoder until it completes
//     -> complete N TYPE HEX   (N: parts fed when it completed; HEX: the reassembled bytes)
//     -> incomplete            (every part fed, not complete)
//     -> error N MESSAGE       (the decoder refused part N, or failed at it)
//   encode TYPE HEX FRAGMENT COUNT
//     -> K PART PART …         (K fragments; the first COUNT parts of bc-ur's own encoder)
//
// The package is found through NODE_PATH (tools/bc-ur-interop/install.sh puts it in a cache
// folder); a missing package or another version is an error, never a silent pass.
'use strict';

const readline = require('readline');

const PINNED = '1.1.13';
let bcur;
let version;
try {
  bcur = require('@ngraveio/bc-ur');
  version = require('@ngraveio/bc-ur/package.json').version;
} catch (e) {
  process.stderr.write(
    `bc-ur harness: @ngraveio/bc-ur not found (${e.message}); run \`make setup\` ` +
      '(tools/bc-ur-interop/install.sh)\n',
  );
  process.exit(2);
}
if (version !== PINNED) {
  process.stderr.write(`bc-ur harness: found @ngraveio/bc-ur ${version}, expected ${PINNED}\n`);
  process.exit(2);
}
const { UR, UREncoder, URDecoder } = bcur;

function decode(parts) {
  const decoder = new URDecoder(undefined, 'bytes');
  let fed = 0;
  for (const part of parts) {
    fed += 1;
    try {
      decoder.receivePart(part);
    } catch (e) {
      return `error ${fed} ${e.message}`;
    }
    if (decoder.isError()) {
      return `error ${fed} ${decoder.resultError()}`;
    }
    if (decoder.isComplete()) {
      const ur = decoder.resultUR();
      return `complete ${fed} ${ur.type} ${ur.cbor.toString('hex')}`;
    }
  }
  return 'incomplete';
}

function encode(type, messageHex, fragment, count) {
  const encoder = new UREncoder(new UR(Buffer.from(messageHex, 'hex'), type), fragment);
  const parts = [];
  for (let i = 0; i < count; i += 1) parts.push(encoder.nextPart());
  return `${encoder.fragmentsLength} ${parts.join(' ')}`;
}

function answer(line) {
  const [op, ...args] = line.trim().split(' ');
  switch (op) {
    case 'version':
      return version;
    case 'decode':
      return decode(args);
    case 'encode':
      return encode(args[0], args[1], Number(args[2]), Number(args[3]));
    default:
      throw new Error(`unknown request ${op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  process.stdout.write(`${answer(line)}\n`);
});
