/**
 * The browser's life-cycle as the client needs it: whether the network is up
 * (`navigator.onLine`, `online`/`offline`) and whether the page is seen
 * (`document.visibilityState`, `visibilitychange`). `DanmuClient` waits for `online` instead of
 * spending attempts while offline, tries at once when the network or the page comes back, and
 * checks its link with a `ping` when the page is shown again (a hidden tab's timers may have
 * been throttled: docs in the README's "Hidden tabs").
 *
 * Outside a browser (Node.js) there is nothing to watch: `browserLifecycle()` answers null.
 * Tests pass their own `Lifecycle`.
 */

export interface LifecycleHandlers {
  online(): void;
  offline(): void;
  visible(): void;
  hidden(): void;
}

export interface Lifecycle {
  /** False when the device says it has no network. */
  isOnline(): boolean;
  /** True while the page is hidden (a background tab, a minimised window). */
  isHidden(): boolean;
  /** Starts telling `handlers`; answers a function that stops. */
  watch(handlers: LifecycleHandlers): () => void;
}

interface EventTargetish {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** The page's own life-cycle, or null outside a browser. */
export function browserLifecycle(): Lifecycle | null {
  const g = globalThis as {
    window?: EventTargetish;
    document?: EventTargetish & { visibilityState?: string };
    navigator?: { onLine?: boolean };
  };
  const win = g.window;
  const doc = g.document;
  if (!win || typeof win.addEventListener !== "function") return null;
  return {
    isOnline: () => g.navigator?.onLine !== false,
    isHidden: () => doc?.visibilityState === "hidden",
    watch(handlers) {
      const online = () => handlers.online();
      const offline = () => handlers.offline();
      const visibility = () => (doc?.visibilityState === "hidden" ? handlers.hidden() : handlers.visible());
      win.addEventListener("online", online);
      win.addEventListener("offline", offline);
      doc?.addEventListener("visibilitychange", visibility);
      return () => {
        win.removeEventListener("online", online);
        win.removeEventListener("offline", offline);
        doc?.removeEventListener("visibilitychange", visibility);
      };
    },
  };
}
