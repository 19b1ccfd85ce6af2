/** What messages call a PostgreSQL URL's server: host:port (IPv6 bracketed, defaults filled) or the socket directory. */
import { describe, expect, it } from "vitest";
import { postgresTarget } from "./postgres-target.js";

describe("postgresTarget", () => {
  it("names host:port, never the password, with libpq's defaults filled in", () => {
    expect(postgresTarget("postgres://fleet:s3cret@db.example.com:6432/nbfleet?sslmode=verify-full")).toEqual(
      {
        address: "db.example.com:6432",
        database: "nbfleet",
        user: "fleet",
      },
    );
    expect(postgresTarget("postgresql://fleet@db.example.com/nbfleet").address).toBe("db.example.com:5432");
    expect(postgresTarget("postgres://fleet@[::1]:5433/nbfleet").address).toBe("[::1]:5433");
    expect(postgresTarget("postgres://fleet@/nbfleet?host=/var/run/postgresql").address).toBe(
      "/var/run/postgresql",
    );
    expect(JSON.stringify(postgresTarget("postgres://fleet:s3cret@h/d"))).not.toContain("s3cret");
  });
});
