import { denseSpec } from './dense.js';
import { multiQuerySpec } from './multi-query.js';
import { axialSpec } from './axial.js';
import { bigBirdSpec } from './big-bird.js';
import { lshSpec } from './lsh.js';
import { routingSpec } from './routing.js';
import { sinkhornSpec } from './sinkhorn.js';
import { transformerXLSpec } from './transformer-xl.js';
import { compressiveSpec } from './compressive.js';
import { blockwiseSpec } from './blockwise.js';
import { compressedSpec } from './compressed.js';
import { dilatedSpec } from './dilated.js';
import { etcSpec } from './etc.js';
import { setTransformerSpec } from './set-transformer.js';
import { localSpec } from './local.js';
import { longformerSpec } from './longformer.js';
import { sparseTransformerSpec } from './sparse-transformer.js';
import { stridedSpec } from './strided.js';
import { adaptiveSpanSpec } from './adaptive-span.js';
import { linearSpec } from './linear.js';
import { linformerSpec } from './linformer.js';
import { performerSpec } from './performer.js';
import type { VariantSpec } from './types.js';

/** Specs by catalog id. Every catalog entry needs one. */
export const specs: Record<string, VariantSpec> = {
  dense: denseSpec,
  'multi-query': multiQuerySpec,
  local: localSpec,
  blockwise: blockwiseSpec,
  strided: stridedSpec,
  dilated: dilatedSpec,
  compressed: compressedSpec,
  'sparse-transformer': sparseTransformerSpec,
  axial: axialSpec,
  'big-bird': bigBirdSpec,
  lsh: lshSpec,
  routing: routingSpec,
  sinkhorn: sinkhornSpec,
  'transformer-xl': transformerXLSpec,
  compressive: compressiveSpec,
  longformer: longformerSpec,
  etc: etcSpec,
  'set-transformer': setTransformerSpec,
  linformer: linformerSpec,
  linear: linearSpec,
  performer: performerSpec,
  'adaptive-span': adaptiveSpanSpec,
};
