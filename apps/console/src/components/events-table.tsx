/** A table of events, newest first: the events page's (with the machine column) and a machine page's. */
import type { FleetEventView } from "@nbfleet/shared";
import { Link } from "wouter-preact";
import { when } from "../format.js";
import { TableHead } from "./common.js";

export function EventsTable({ events, showMachine }: { events: FleetEventView[]; showMachine: boolean }) {
  return (
    <table>
      <TableHead
        columns={
          showMachine ? ["Time", "Machine", "Kind", "Level", "Message"] : ["Time", "Kind", "Level", "Message"]
        }
      />
      <tbody>
        {events.map((event) => (
          <tr key={event.id}>
            <td title={event.at}>{when(event.at)}</td>
            {showMachine && (
              <td>
                {event.vmName ? (
                  <Link href={`/vms/${encodeURIComponent(event.vmName)}`}>{event.vmName}</Link>
                ) : (
                  "—"
                )}
              </td>
            )}
            <td>{event.kind}</td>
            <td>{event.level}</td>
            <td>{event.message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
