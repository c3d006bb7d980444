// The frame every matcher alternative is a stack of (frames.ts explains the matcher), kept apart
// so frame kinds in other files can extend it without an import cycle.

export abstract class Frame {
  constructor(readonly parent: Frame | null) {}
  /** The alternatives after consuming byte b (empty: b is not allowed here). */
  abstract step(b: number): Frame[];
  /** Whether the input may end here. */
  abstract canEnd(): boolean;
  /** Fewest bytes this frame still needs once its child (if any) is done. */
  abstract rem(): number;
  /** A child frame finished with a result (literal option id, property index). */
  resume(_result: number): Frame {
    throw new Error('frame has no children');
  }
  /** Is this a string body where any ordinary character may come next (fast mask path)? */
  plainRoom(): number { return -1; }
}

class DoneFrame extends Frame {
  step(): Frame[] { return []; }
  canEnd(): boolean { return true; }
  rem(): number { return 0; }
}
/** The empty stack: the grammar is complete and nothing may follow. */
export const DONE: Frame = new DoneFrame(null);

export function complete(parent: Frame | null, result: number): Frame {
  return parent === null ? DONE : parent.resume(result);
}

