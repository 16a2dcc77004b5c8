/**
 * The few tfjs-backend-webgpu types the kernels use, imported as types only so that no
 * variant pulls the webgpu backend's code into a bundle that does not use it.
 *
 * @module
 */
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/** tfjs's WebGPU program description (a structural copy of the backend's interface). */
export interface WebGPUProgram {
  atomic?: boolean;
  dispatch: [number, number, number];
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  outputComponent?: number;
  outputShape: number[];
  shaderKey: string;
  size?: boolean;
  uniforms?: string;
  variableNames: string[];
  variableComponents?: number[];
  workgroupSize: [number, number, number];
  getUserCode: () => string;
}

export type { WebGPUBackend };
