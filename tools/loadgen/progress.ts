/**
 * A one-line progress display on stderr with live ops/s. On a TTY the line is redrawn on
 * every update (the load generator sends ~4 per second); otherwise a plain line is written
 * at most every 5 s, so CI logs and files stay readable.
 */

export interface ProgressUpdate {
  phase: 'load' | 'warmup' | 'measure' | 'drain';
  /** Measured operations completed. */
  completed: number;
  loadCompleted: number;
  loadTotal: number;
}

export interface ProgressOptions {
  label: string;
  /** Length of the measured part, for the bar (else `totalOps`). */
  totalMs?: number;
  totalOps?: number;
  stream?: NodeJS.WriteStream;
  /** Milliseconds between lines when the stream is not a TTY. */
  plainEveryMs?: number;
  now?: () => number;
}

const BAR_WIDTH = 24;

export class ProgressLine {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private lastLineMs = -Infinity;
  private lastCount = 0;
  private lastCountMs: number;
  private lastPhase: ProgressUpdate['phase'] | null = null;
  private measureStartMs: number | null = null;
  private rate = 0;
  private drawn = false;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.now = options.now ?? (() => performance.now());
    this.lastCountMs = this.now();
  }

  update(u: ProgressUpdate): void {
    const now = this.now();
    const count = u.phase === 'load' ? u.loadCompleted : u.completed;
    if (u.phase !== this.lastPhase) {
      // Rates do not carry across phases (load and run count different things).
      this.lastCount = u.phase === 'load' ? 0 : u.completed;
      this.lastCountMs = now;
      this.rate = 0;
      if (u.phase === 'measure') this.measureStartMs = now;
      this.lastPhase = u.phase;
    }
    const dt = now - this.lastCountMs;
    if (dt >= 200) {
      const instant = ((count - this.lastCount) * 1000) / dt;
      this.rate = this.rate === 0 ? instant : this.rate * 0.5 + instant * 0.5;
      this.lastCount = count;
      this.lastCountMs = now;
    }
    const line = this.render(u, now);
    if (this.tty) {
      this.stream.write(`\r${line.padEnd(100).slice(0, Math.max(40, (this.stream.columns ?? 100) - 1))}`);
      this.drawn = true;
    } else if (now - this.lastLineMs >= (this.options.plainEveryMs ?? 5000)) {
      this.stream.write(`${line}\n`);
      this.lastLineMs = now;
    }
  }

  /** Ends the line (TTY) and prints a final summary, if any. */
  finish(summary?: string): void {
    if (this.tty && this.drawn) this.stream.write('\n');
    this.drawn = false;
    if (summary) this.stream.write(`${summary}\n`);
  }

  /** The text of the line for an update (exported through the class for tests). */
  render(u: ProgressUpdate, now: number): string {
    let fraction: number | null = null;
    if (u.phase === 'load') fraction = u.loadTotal > 0 ? u.loadCompleted / u.loadTotal : null;
    else if (u.phase === 'measure' || u.phase === 'drain') {
      if (this.options.totalOps) fraction = u.completed / this.options.totalOps;
      else if (this.options.totalMs && this.measureStartMs !== null) fraction = (now - this.measureStartMs) / this.options.totalMs;
    }
    const bar = fraction === null ? ' '.repeat(BAR_WIDTH) : progressBar(fraction, BAR_WIDTH);
    const counts = u.phase === 'load' ? `${u.loadCompleted}/${u.loadTotal} loaded` : `${u.completed} ops`;
    return `${this.options.label} ${u.phase.padEnd(7)} [${bar}] ${counts}  ${Math.round(this.rate).toLocaleString('en-US')} ops/s`;
  }
}

/** `[#####.....]`-style bar of `width` characters for a fraction in [0, 1]. */
export function progressBar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.round(f * width);
  return '#'.repeat(full) + '.'.repeat(width - full);
}
