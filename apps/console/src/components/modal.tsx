/**
 * A modal `<dialog>`: opened with showModal() so it sits in the top layer, above the table and
 * its pager (a dialog with `open` is drawn in the page flow and other controls can cover it),
 * and inert everything behind it. Escape closes it through `onClose`.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

interface Props {
  label: string;
  class?: string;
  onClose?: () => void;
  children: ComponentChildren;
}

export function Modal({ label, class: className, onClose, children }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class={className}
      aria-label={label}
      onCancel={(event) => {
        event.preventDefault();
        onClose?.();
      }}
    >
      {children}
    </dialog>
  );
}
