/** Moves focus to a page heading when a route mounts (so screen readers announce the page). */
export function focusOnMount(node: HTMLElement): void {
  queueMicrotask(() => {
    node.focus();
    const t = node.textContent?.trim();
    document.title = t ? `${t} · kez-chat` : 'kez-chat';
  });
}
