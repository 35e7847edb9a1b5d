import { app } from '../app/state.svelte';

/**
 * On a page's heading: names the tab after it and moves focus to it (screen readers announce the page), or, when
 * `field` names an element (a CSS selector), to that field: the place the user types next.
 */
export function focusOnMount(node: HTMLElement, field?: string): void {
  queueMicrotask(() => {
    const target = field ? document.querySelector<HTMLElement>(field) : null;
    (target ?? node).focus();
    setPageTitle(node.textContent?.trim() ?? '');
  });
}

/** Focuses the first field of a form step when it appears. */
export function focusFirst(node: HTMLElement): void {
  queueMicrotask(() => {
    node.querySelector<HTMLElement>('input:not([type=hidden]):not([type=checkbox]):not([disabled]), textarea:not([disabled]), select:not([disabled])')?.focus();
  });
}

export function setPageTitle(t: string): void {
  app.notifier.pageTitle = t;
}
