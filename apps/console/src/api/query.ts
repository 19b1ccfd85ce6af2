/** TanStack Query's core with a small Preact hook (no React compat layer needed). */
import { QueryClient, QueryObserver, type QueryObserverResult } from "@tanstack/query-core";
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiFailure } from "./client.js";

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 2_000,
      refetchOnWindowFocus: true,
      // A 4xx will not get better by asking again.
      retry: (count, error) => !(error instanceof ApiFailure && error.status < 500) && count < 2,
    },
  },
});
queryClient.mount();

interface UseQueryOptions<T> {
  key: readonly unknown[];
  fn: (signal: AbortSignal) => Promise<T>;
  /** A number, false, or from the data so far (e.g. stop polling once an operation finished). */
  refetchInterval?: number | false | ((data: T | undefined) => number | false);
  enabled?: boolean;
}

export function useQuery<T>(options: UseQueryOptions<T>): QueryObserverResult<T, Error> {
  const observerOptions = toObserverOptions(options);
  // biome-ignore lint/correctness/useExhaustiveDependencies: one observer per component; its options are set on each render
  const observer = useMemo(() => new QueryObserver<T, Error>(queryClient, observerOptions), []);
  observer.setOptions(observerOptions);
  const [, rerender] = useState(0);
  useEffect(() => observer.subscribe(() => rerender((n) => n + 1)), [observer]);
  return observer.getOptimisticResult(queryClient.defaultQueryOptions(observerOptions));
}

function toObserverOptions<T>(options: UseQueryOptions<T>) {
  return {
    queryKey: options.key,
    queryFn: ({ signal }: { signal: AbortSignal }) => options.fn(signal),
    refetchInterval: (query: { state: { data: T | undefined } }) => {
      const interval = options.refetchInterval ?? false;
      return typeof interval === "function" ? interval(query.state.data) : interval;
    },
    enabled: options.enabled ?? true,
  };
}
