/**
 * The emitting half of an event emitter, typed by the events it may emit: what a part of a component (the server's
 * dials and agent backends, an agent's tunnels) is given to report through the component's own events, without
 * importing the component.
 */
export interface EventSink<E extends object> {
  emit<K extends keyof E & string>(event: K, ...args: E[K] & unknown[]): boolean;
}
