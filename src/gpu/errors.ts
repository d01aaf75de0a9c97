/**
 * Validation errors of submitted batches, reported at the next readback.
 *
 * WebGPU reports a rejected command (a destroyed buffer, bindings that do not match the kernel)
 * asynchronously and otherwise only logs it, while the work is skipped and its outputs stay zero.
 * Every {@link ComputeBatch} submit runs inside a validation error scope; the scope's outcome is
 * kept per device, and the next `readBuffers` — the first point where skipped work could be
 * mistaken for a result — throws {@link GpuBatchError} instead of returning those zeros.
 *
 * @module
 */

/** A submitted batch was rejected by WebGPU; its work did not run. */
export class GpuBatchError extends Error {
  /** @param message names the batch's kernels and WebGPU's reason. */
  constructor(message: string) {
    super(message);
    this.name = "GpuBatchError";
  }
}

interface DeviceErrors {
  first: string | null;
  outstanding: Set<Promise<void>>;
}

const state = new WeakMap<GPUDevice, DeviceErrors>();

function errorsOf(device: GPUDevice): DeviceErrors {
  let s = state.get(device);
  if (!s) {
    s = { first: null, outstanding: new Set() };
    state.set(device, s);
  }
  return s;
}

/**
 * Runs `submit` inside a validation error scope and remembers a rejection under `label` (the
 * batch's kernel names) until the next {@link throwBatchErrors}.
 */
export function scopedSubmit(device: GPUDevice, label: string, submit: () => void): void {
  const s = errorsOf(device);
  device.pushErrorScope("validation");
  try {
    submit();
  } finally {
    const done: Promise<void> = device.popErrorScope().then(
      (error) => {
        if (error && s.first === null) {
          s.first = `WebGPU rejected the batch (${label}): ${error.message}`;
        }
      },
      () => {}, // the device was lost: device.lost reports that
    ).finally(() => s.outstanding.delete(done));
    s.outstanding.add(done);
  }
}

/** Waits for the pending scopes of `device` and throws the first rejection since the last call. */
export async function throwBatchErrors(device: GPUDevice): Promise<void> {
  const s = errorsOf(device);
  while (s.outstanding.size > 0) await Promise.all([...s.outstanding]);
  const first = s.first;
  s.first = null;
  if (first !== null) throw new GpuBatchError(first);
}
