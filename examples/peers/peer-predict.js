#!/usr/bin/env node
// peer-predict: classify the emotion of edan face records with a peer model,
// face-api.js's FaceExpressionNet or Human's emotion model, and write them as
// edan-predict writes its own: the record unchanged plus
//   "pred": {"label": <argmax>, "probs": {<canonical label>: p, ...}}, "run": <peer>
// so that one edan-eval command scores edan and the peers on the same faces.
//
//   peer-predict.js --peer face-api.js|human --weights DIR [--batch N] [--stats FILE] [FILE]
//
// Records come from FILE (none or -: stdin), one JSON object a line (a line
// that is not one is an image path, as for the edan programs). The face is
// the record's "crop" (else its "image"): an 8-bit greyscale PNG as
// edan-crop writes it, decoded exactly (pngjs), the whole image being the
// face (no detector). A record that arrives with an "error" is copied
// unchanged (no "run" either: that failure is not this run's); one that
// cannot be scored gains an "error" and "run", and the stream goes on.
// Exit status: 0 all fine, 1 some record failed, 2 usage error, 3 fatal.
//
// Packages are found through NODE_PATH (the Makefile points it at the
// folder npm installed them into).
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');

const PROG = 'peer-predict';

// edan's canonical order (edan(7)); the peers have no contempt.
const CANONICAL = ['neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger'];

// Each peer's output order, in its own names, mapped to canonical labels.
const FACEAPI_LABELS = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];
const HUMAN_LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
const TO_CANONICAL = {
  neutral: 'neutral', happy: 'happy', sad: 'sad', angry: 'anger', fearful: 'fear',
  disgusted: 'disgust', surprised: 'surprise', disgust: 'disgust', fear: 'fear',
  surprise: 'surprise',
};

class UsageError extends Error {}

function usage() {
  return `Usage: ${PROG} --peer face-api.js|human --weights DIR [OPTION]... [FILE]
Classify the emotion of each face record with a peer model.

Options:
  --peer NAME       face-api.js (FaceExpressionNet, tfjs-core CPU) or human (emotion model, tfjs wasm)
  --weights DIR     folder with the peer's weights (face_expression_model-weights_manifest.json
                    and its .bin; or emotion.json and its .bin)
  --batch N         faces read per call of the model: face-api.js runs them as one batch, Human
                    (as Human does) one by one; the results do not depend on it (default: 32)
  --stats FILE      also write {peer, backend, faces, failed, seconds, faces_per_s} to FILE
  -h, --help        show this help and exit
`;
}

function parseArgs(argv) {
  const opt = { peer: null, weights: null, batch: 32, stats: null, file: '-' };
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new UsageError(`option ${a} needs a value`);
      return argv[++i];
    };
    if (a === '-h' || a === '--help') { process.stdout.write(usage()); process.exit(0); }
    else if (a === '--peer') opt.peer = value();
    else if (a === '--weights') opt.weights = value();
    else if (a === '--batch') opt.batch = Number(value());
    else if (a === '--stats') opt.stats = value();
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    else files.push(a);
  }
  if (!['face-api.js', 'human'].includes(opt.peer)) throw new UsageError('--peer must be face-api.js or human');
  if (!opt.weights) throw new UsageError('--weights is required');
  if (!Number.isInteger(opt.batch) || opt.batch < 1) throw new UsageError('--batch must be a positive integer');
  if (files.length > 1) throw new UsageError('at most one FILE');
  if (files.length) opt.file = files[0];
  return opt;
}

// Reads the manifest's shards, in order, into one ArrayBuffer.
function readShards(dir, manifest) {
  const buf = Buffer.concat(manifest.flatMap((g) => g.paths).map((p) => fs.readFileSync(path.join(dir, p))));
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
}

// Each peer: load(dir) → { backend, classify(images) → [[p in the peer's label order]] },
// images being {width, height, grey: Uint8Array} faces.

async function loadFaceApi(dir) {
  const faceapi = require('face-api.js');
  const tf = faceapi.tf; // face-api.js's own tfjs-core (1.7.0), not Human's
  await tf.setBackend('cpu');
  tf.backend().firstUse = false; // no banner advertising tfjs-node on stderr: it is not wanted here
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'face_expression_model-weights_manifest.json'), 'utf8'));
  const weightMap = tf.io.decodeWeights(readShards(dir, manifest), manifest.flatMap((g) => g.weights));
  const net = new faceapi.FaceExpressionNet();
  net.loadFromWeightMap(weightMap);
  return {
    backend: `tfjs-core ${tf.version_core} ${tf.getBackend()}`,
    labels: FACEAPI_LABELS,
    async classify(images) {
      // The grey value in R, G and B, 0..255, as tf.browser.fromPixels gives
      // a grey image; predictExpressions then resizes it to 112x112
      // (tf.image.resizeBilinear) and subtracts its mean RGB itself.
      const inputs = images.map((im) => {
        const rgb = new Float32Array(im.width * im.height * 3);
        for (let i = 0; i < im.grey.length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = im.grey[i];
        return tf.tensor3d(rgb, [im.height, im.width, 3]);
      });
      let out = await net.predictExpressions(inputs);
      inputs.forEach((t) => t.dispose());
      if (!Array.isArray(out)) out = [out]; // a batch of one comes back unwrapped
      return out.map((e) => FACEAPI_LABELS.map((l) => e[l]));
    },
  };
}

async function loadHuman(dir) {
  const tf = require('@tensorflow/tfjs-core');
  require('@tensorflow/tfjs-backend-wasm');
  const { loadGraphModel } = require('@tensorflow/tfjs-converter');
  if (!(await tf.setBackend('wasm'))) throw new Error('the tfjs wasm backend did not start');
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'emotion.json'), 'utf8'));
  const model = await loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy,
    convertedBy: json.convertedBy, weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: readShards(dir, json.weightsManifest),
  }));
  const size = model.inputs[0].shape[2]; // 64
  if (model.inputs[0].shape[3] !== 1) throw new Error('emotion.json: expected the grey (oarriaga) model');
  // Human's constants (src/tfjs/constants.ts).
  const rgbWeights = tf.tensor1d([0.2989, 0.5870, 0.1140], 'float32');
  const tf05 = tf.scalar(0.5, 'float32');
  const tf2 = tf.scalar(2.0, 'float32');
  const tf255 = tf.scalar(255.0, 'float32');
  return {
    backend: `tfjs-core ${tf.version_core} ${tf.getBackend()}${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? ' simd' : ''}`,
    labels: HUMAN_LABELS,
    async classify(images) {
      const out = [];
      for (const im of images) {
        const probs = tf.tidy(() => {
          // Human's face tensor: the RGB face crop divided by 255
          // (src/face/facemeshutil.ts); a grey face has R = G = B.
          const rgb = new Float32Array(im.width * im.height * 3);
          for (let i = 0; i < im.grey.length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = im.grey[i];
          const face = tf.div(tf.tensor4d(rgb, [1, im.height, im.width, 3]), tf255);
          // Then exactly src/gear/emotion.ts, predict(), the grey-model branch
          // (no emotion.crop in the default config).
          const resize = tf.image.resizeBilinear(face, [size, size], false);
          const channels = tf.mul(resize, rgbWeights);
          const grayscale = tf.sum(channels, 3, true);
          const grayscaleSub = tf.sub(grayscale, tf05);
          const grayscaleMul = tf.mul(grayscaleSub, tf2);
          return model.execute(grayscaleMul); // softmax already
        });
        out.push(Array.from(await probs.data()));
        probs.dispose();
      }
      return out;
    },
  };
}

// Decodes an 8-bit greyscale PNG exactly; anything else is refused, since
// edan would read it through its own conversion.
function readGrey(file, PNG) {
  let bytes;
  let png;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot open: ${e.code === 'ENOENT' ? 'No such file or directory' : e.message}`);
  }
  if (!bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    throw new Error(`${file}: not a PNG (the peers read edan-crop's PNG crops)`);
  }
  try {
    png = PNG.sync.read(bytes, { skipRescale: true });
  } catch (e) {
    throw new Error(`${file}: cannot decode: ${e.message}`);
  }
  if (png.colorType !== 0 || png.depth !== 8) {
    throw new Error(`${file}: not an 8-bit greyscale PNG (colour type ${png.colorType}, depth ${png.depth})`);
  }
  const grey = new Uint8Array(png.width * png.height);
  for (let i = 0; i < grey.length; i++) grey[i] = png.data[4 * i]; // RGBA, R = G = B = grey
  return { width: png.width, height: png.height, grey };
}

function round6(p) { return Number(p.toPrecision(6)); } // as edan-predict writes them

async function main() {
  let opt;
  try {
    opt = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${PROG}: ${e.message}\nTry '${PROG} --help'\n`);
    return 2;
  }
  const { PNG } = require('pngjs');
  let peer;
  try {
    peer = await (opt.peer === 'human' ? loadHuman : loadFaceApi)(opt.weights);
  } catch (e) {
    process.stderr.write(`${PROG}: ${opt.peer}: ${e.message}\n`);
    return 3;
  }

  const input = opt.file === '-' ? process.stdin : fs.createReadStream(opt.file);
  input.on('error', (e) => { process.stderr.write(`${PROG}: ${opt.file}: ${e.message}\n`); process.exit(3); });
  process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); throw e; });

  let faces = 0;
  let failed = 0;
  const t0 = process.hrtime.bigint();
  let batch = []; // {line, rec, image}

  const flush = async () => {
    const todo = batch.filter((b) => b.image);
    if (todo.length) {
      const probs = await peer.classify(todo.map((b) => b.image));
      todo.forEach((b, i) => {
        const byLabel = {};
        peer.labels.forEach((l, j) => { byLabel[TO_CANONICAL[l]] = probs[i][j]; });
        const p = {};
        let best = CANONICAL[0];
        for (const l of CANONICAL) {
          p[l] = round6(byLabel[l]);
          if (byLabel[l] > byLabel[best]) best = l; // ties: the first in canonical order
        }
        b.rec.pred = { label: best, probs: p };
        b.rec.run = opt.peer;
      });
      faces += todo.length;
    }
    const text = batch.map((b) => (b.rec ? JSON.stringify(b.rec) : b.line)).join('\n');
    batch = [];
    if (text && !process.stdout.write(`${text}\n`)) await new Promise((r) => process.stdout.once('drain', r));
  };

  for await (const raw of readline.createInterface({ input, crlfDelay: Infinity })) {
    const line = raw.trim();
    if (!line) continue;
    let rec;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      rec = null;
    }
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) rec = { image: line };
    if ('error' in rec) {
      batch.push({ line, rec: null }); // passed through as it came
    } else {
      const file = rec.crop ?? rec.image;
      try {
        if (typeof file !== 'string') throw new Error('record has no crop or image');
        batch.push({ rec, image: readGrey(file, PNG) });
      } catch (e) {
        rec.error = e.message;
        rec.run = opt.peer; // a failure of this run, counted in its group
        failed++;
        process.stderr.write(`${PROG}: ${e.message}\n`);
        batch.push({ rec });
      }
    }
    if (batch.length >= opt.batch) await flush();
  }
  await flush();

  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (opt.stats) {
    const stats = {
      peer: opt.peer, backend: peer.backend, faces, failed, seconds: Number(seconds.toFixed(2)),
      faces_per_s: Number((faces / seconds).toFixed(1)),
    };
    fs.writeFileSync(opt.stats, `${JSON.stringify(stats)}\n`);
  }
  if (failed) process.stderr.write(`${PROG}: ${failed} record(s) failed\n`);
  return failed ? 1 : 0;
}

main().then((rc) => { process.exitCode = rc; }, (e) => {
  process.stderr.write(`${PROG}: ${e.stack || e.message}\n`);
  process.exitCode = 3;
});
