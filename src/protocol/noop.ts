/** The one do-nothing function: for errors reported elsewhere (`.catch(noop)`, `on('error', noop)`). Pure. */
export function noop(): void {}
