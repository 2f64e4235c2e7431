// Small helpers that build DOM nodes. Text always goes in through
// textContent, so data from the Rust side is never parsed as HTML.

export type Child = Node | string | number | null | undefined | false;

export interface Props {
  /** Stable id for end-to-end tests, written to data-testid. */
  testid?: string;
  className?: string;
  text?: string;
  attrs?: Record<string, string>;
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
  [property: string]: unknown;
}

const RESERVED = new Set(["testid", "className", "text", "attrs", "on"]);

/** Creates an element with the given properties, attributes, listeners and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (props.testid !== undefined) element.dataset.testid = props.testid;
  if (props.className !== undefined) element.className = props.className;
  if (props.text !== undefined) element.textContent = props.text;
  for (const [name, value] of Object.entries(props.attrs ?? {})) {
    element.setAttribute(name, value);
  }
  for (const [name, handler] of Object.entries(props.on ?? {})) {
    element.addEventListener(name, handler as EventListener);
  }
  for (const [name, value] of Object.entries(props)) {
    if (RESERVED.has(name) || value === undefined) continue;
    if (name === "innerHTML" || name === "outerHTML") {
      throw new Error(`h(): '${name}' is not allowed, because it would parse data as HTML`);
    }
    (element as unknown as Record<string, unknown>)[name] = value;
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces all children of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/** Finds an element by its data-testid inside `root`. */
export function byTestId<T extends HTMLElement = HTMLElement>(root: ParentNode, testid: string): T | null {
  for (const element of root.querySelectorAll<HTMLElement>("[data-testid]")) {
    if (element.dataset.testid === testid) return element as T;
  }
  return null;
}
