import type { AnchorHTMLAttributes, MouseEvent } from "react";
import { navigate } from "../hooks/useRoute.ts";

/** An in-app link: a real `<a href>` (opens in a new tab with a modifier) that navigates without reloading. */
export function Link({ to, ...anchor }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={onClick} {...anchor} />;
}
