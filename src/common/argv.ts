/**
 * Reads `--name value` and `--name=value` command-line options one at a time: the one
 * tokenizer behind every ragkv subcommand's flags.
 */
export class ArgvReader {
  private index = -1;
  private inline: string | undefined;
  /** The current option's name, e.g. `--members` (the whole argument when it is not an option). */
  name = '';
  /** The current argument as given (for error messages). */
  raw = '';

  constructor(
    private readonly argv: readonly string[],
    /** Builds the error thrown when an option's value is missing. */
    private readonly missing: (message: string) => Error,
  ) {}

  /** Moves to the next argument; false at the end. */
  next(): boolean {
    this.index++;
    if (this.index >= this.argv.length) return false;
    this.raw = this.argv[this.index]!;
    const eq = this.raw.indexOf('=');
    if (this.raw.startsWith('--') && eq > 0) {
      this.name = this.raw.slice(0, eq);
      this.inline = this.raw.slice(eq + 1);
    } else {
      this.name = this.raw;
      this.inline = undefined;
    }
    return true;
  }

  /**
   * The current option's value: after `=`, else the next argument. A next argument that looks
   * like another option is refused unless `mayLookLikeOption` (e.g. arguments passed through).
   */
  value(mayLookLikeOption = false): string {
    if (this.inline !== undefined) return this.inline;
    const next = this.argv[this.index + 1];
    if (next === undefined || (!mayLookLikeOption && next.startsWith('--'))) throw this.missing(`${this.name} needs a value`);
    this.index++;
    return next;
  }

  /** Every argument after the current one (and ends the walk). */
  rest(): string[] {
    const out = this.argv.slice(this.index + 1);
    this.index = this.argv.length;
    return out;
  }
}
