import os from "node:os";
import { describe, expect, it } from "vitest";
import { type DiskStats, type ResourceProbe, checkResources, usageStatus } from "./resources-check.js";

const GiB = 1024 ** 3;

function probe(overrides: Partial<ResourceProbe> & { disk?: DiskStats } = {}): ResourceProbe {
  const disk = overrides.disk ?? { bsize: 4096, blocks: 1000, bfree: 800, bavail: 800 };
  return {
    loadavg: () => [0.5, 0.5, 0.5],
    cpuCount: () => 2,
    freemem: () => 6 * GiB,
    totalmem: () => 8 * GiB,
    statfs: async () => disk,
    ...overrides,
  };
}

describe("usageStatus", () => {
  it("warns from 90 % and fails from 98 %", () => {
    expect(usageStatus(0)).toBe("pass");
    expect(usageStatus(89.9)).toBe("pass");
    expect(usageStatus(90)).toBe("warn");
    expect(usageStatus(97.9)).toBe("warn");
    expect(usageStatus(98)).toBe("fail");
    expect(usageStatus(100)).toBe("fail");
  });
});

describe("checkResources", () => {
  it("passes with room to spare and reports the numbers", async () => {
    const check = await checkResources({ diskPath: "/data" }, new Date("2026-01-01T00:00:00Z"), probe());
    expect(check).toMatchObject({ name: "resources", status: "pass", checkedAt: "2026-01-01T00:00:00.000Z" });
    expect(check.data).toEqual({
      cpu: { cores: 2, load1: 0.5, loadPerCore: 0.25 },
      memory: { totalBytes: 8 * GiB, freeBytes: 6 * GiB, usedPercent: 25 },
      disk: { path: "/data", totalBytes: 4096 * 1000, availableBytes: 4096 * 800, usedPercent: 20 },
    });
  });

  it("counts the disk as df does, leaving out blocks reserved for root", async () => {
    // 900 used, 50 available to users, 50 reserved: 900 / 950 = 94.7 %.
    const check = await checkResources(
      { diskPath: "/data" },
      new Date(),
      probe({ disk: { bsize: 4096, blocks: 1000, bfree: 100, bavail: 50 } }),
    );
    expect(check.status).toBe("warn");
    expect(check.message).toBe("disk of /data 94.7 % used");
  });

  it("fails on a nearly full disk and on nearly exhausted memory", async () => {
    const disk = await checkResources(
      { diskPath: "/data" },
      new Date(),
      probe({ disk: { bsize: 4096, blocks: 1000, bfree: 10, bavail: 10 } }),
    );
    expect(disk.status).toBe("fail");
    const memory = await checkResources(
      { diskPath: "/data" },
      new Date(),
      probe({ freemem: () => 0.1 * GiB }),
    );
    expect(memory.status).toBe("fail");
    expect(memory.message).toBe("memory 98.8 % used");
  });

  it("takes the worst finding and names every one", async () => {
    const check = await checkResources(
      { diskPath: "/data" },
      new Date(),
      probe({
        freemem: () => 0.5 * GiB,
        disk: { bsize: 1, blocks: 100, bfree: 1, bavail: 1 },
        loadavg: () => [5, 4, 3],
      }),
    );
    expect(check.status).toBe("fail");
    expect(check.message).toBe(
      "cpu overloaded: load 5 on 2 cores; memory 93.8 % used; disk of /data 99 % used",
    );
  });

  it("only warns about cpu, and only at twice the cores", async () => {
    const busy = await checkResources({ diskPath: "/" }, new Date(), probe({ loadavg: () => [3.9, 1, 1] }));
    expect(busy.status).toBe("pass");
    const overloaded = await checkResources(
      { diskPath: "/" },
      new Date(),
      probe({ loadavg: () => [40, 1, 1] }),
    );
    expect(overloaded.status).toBe("warn");
  });

  it("warns when the disk cannot be measured", async () => {
    const check = await checkResources({ diskPath: "/no/such/dir/for/nbfleet" });
    expect(check.status).toBe("warn");
    expect(check.message).toContain("cannot measure the disk of /no/such/dir/for/nbfleet");
    expect(check.message).toContain("ENOENT");
  });

  it("measures the data directory's disk and the notebook's, each disk once, naming the data directory", async () => {
    const full = { bsize: 4096, blocks: 1000, bfree: 0, bavail: 0, files: 100, ffree: 50 };
    const fine = { bsize: 4096, blocks: 1000, bfree: 900, bavail: 900, files: 100, ffree: 90 };
    const disks: Record<string, { dev: number; stats: DiskStats }> = {
      "/data": { dev: 1, stats: full },
      "/data/notebooks": { dev: 1, stats: full },
      "/mnt/notebooks": { dev: 2, stats: fine },
    };
    const onDisks = probe({
      statfs: async (p) => disks[p]!.stats,
      device: async (p) => disks[p]!.dev,
    });
    const same = await checkResources({ dataDir: "/data", diskPath: "/data/notebooks" }, new Date(), onDisks);
    expect(same.status).toBe("fail");
    expect(same.message).toBe("disk of /data 100 % used");
    expect(same.data?.disk).toMatchObject({ path: "/data", usedPercent: 100, inodesUsedPercent: 50 });
    expect(same.data?.disks).toBeUndefined();

    const apart = await checkResources({ dataDir: "/data", diskPath: "/mnt/notebooks" }, new Date(), onDisks);
    expect(apart.message).toBe("disk of /data 100 % used");
    expect((apart.data?.disks as { path: string }[]).map((d) => d.path)).toEqual(["/data", "/mnt/notebooks"]);
  });

  it("fails when the inodes run out", async () => {
    const check = await checkResources(
      { diskPath: "/data" },
      new Date(),
      probe({ disk: { bsize: 4096, blocks: 1000, bfree: 800, bavail: 800, files: 1000, ffree: 5 } }),
    );
    expect(check.status).toBe("fail");
    expect(check.message).toBe("inodes of /data 99.5 % used");
  });

  it("names the agent's writes that keep failing: a full disk fails, another error warns", async () => {
    const problem = {
      what: "event log",
      file: "/data/state/events.jsonl",
      code: "ENOSPC",
      message: "ENOSPC: no space left on device, write",
      since: "2026-01-01T00:00:00.000Z",
      failures: 3,
    };
    const full = await checkResources({ diskPath: "/data", writeProblems: [problem] }, new Date(), probe());
    expect(full.status).toBe("fail");
    expect(full.message).toBe(
      "the agent cannot write its event log (/data/state/events.jsonl): ENOSPC, 3 failure(s) since 2026-01-01T00:00:00.000Z",
    );
    const denied = await checkResources(
      { diskPath: "/data", writeProblems: [{ ...problem, code: "EACCES" }] },
      new Date(),
      probe(),
    );
    expect(denied.status).toBe("warn");
  });

  it("reads this machine", async () => {
    const check = await checkResources({ diskPath: os.tmpdir() });
    const data = check.data as {
      cpu: { cores: number };
      memory: { totalBytes: number };
      disk: { totalBytes: number };
    };
    expect(data.cpu.cores).toBe(os.availableParallelism());
    expect(data.memory.totalBytes).toBe(os.totalmem());
    expect(data.disk.totalBytes).toBeGreaterThan(0);
  });
});
