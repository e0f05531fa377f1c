/**
 * The error base every part of hsmkit shares. The library names API options in its messages
 * (`root`, `upstream`, `pathLen`); the CLI names the flags that set them (`--root`,
 * `--upstream`, `--path-len`). A message that names options is therefore kept as a function of
 * an {@link OptionNamer}: `message` is rendered with the API names, and the CLI renders it
 * again with its flags through {@link HsmkitError.describeWith}, by type, never by parsing text.
 */

/**
 * Names an API option inside a message. `placeholder` is what the value looks like (`DIR`,
 * `http://HOST:PORT`); the CLI shows it after the flag, the library leaves it out.
 */
export type OptionNamer = (option: string, placeholder?: string) => string;

/** A message that names options, rendered with whichever namer the reader needs. */
export type OptionText = (name: OptionNamer) => string;

/** How the library names an option: the property name, quoted. */
const apiName: OptionNamer = (option) => `'${option}'`;

/** An hsmkit failure whose message may name API options. */
export class HsmkitError extends Error {
  /** The API options the message names, in order (empty when it names none). */
  readonly options: readonly string[];
  readonly #text: OptionText;

  constructor(message: string | OptionText, options?: { cause?: unknown }) {
    const text: OptionText = typeof message === "string" ? () => message : message;
    const named: string[] = [];
    text((option) => {
      named.push(option);
      return option;
    });
    super(text(apiName), options);
    this.name = "HsmkitError";
    this.options = named;
    this.#text = text;
  }

  /** The message with every option named by `name` (the CLI passes its flag names). */
  describeWith(name: OptionNamer): string {
    return this.#text(name);
  }
}

/** A configuration the caller gave is unusable: a missing, conflicting or malformed option. */
export class ConfigError extends HsmkitError {
  /** The API option at fault (the first one the message names). */
  readonly option: string;

  constructor(message: OptionText, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConfigError";
    this.option = this.options[0] ?? "";
  }
}

/** An operation gave up after its time limit. */
export class TimeoutError extends HsmkitError {
  /** The limit that ran out, in milliseconds. */
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number) {
    super(message);
    this.name = "TimeoutError";
    this.timeoutMs = timeoutMs;
  }
}
