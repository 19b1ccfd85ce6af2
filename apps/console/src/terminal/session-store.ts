/**
 * The terminal session id per machine, in this tab's sessionStorage: a dropped connection or a
 * reopened tab attaches to it again. Small on purpose: the machine page reads it without
 * loading xterm.
 */
const key = (vm: string) => `nbfleet.terminal.${vm}`;

export function terminalSession(vm: string): string | null {
  return sessionStorage.getItem(key(vm));
}

export function hasTerminalSession(vm: string): boolean {
  return terminalSession(vm) !== null;
}

export function rememberTerminalSession(vm: string, session: string): void {
  sessionStorage.setItem(key(vm), session);
}

export function forgetTerminalSession(vm: string): void {
  sessionStorage.removeItem(key(vm));
}
