// The merch stand: live drops, a held cart and its tender, the receipt on
// screen and its print status, walk-up tickets and scholarship claims, and
// a supervisor's void and refund.
import { t } from "./strings.js";
import { announce, api, el, errorBox, events, main, minor, money, nonce, screen, show, state } from "./ui.js";

/** The change and the new ticket's QR code (fetched with the token). */
async function ticketView(order, prefix) {
  const ticket = order.tickets[0];
  const png = await fetch(ticket.qr, { headers: { authorization: `Bearer ${state.token}` } }).then((r) => r.blob());
  const change = t.change(money(order.change_minor, order.currency));
  announce(change);
  return [
    el("p", { class: "big", id: `${prefix}-change` }, change),
    el("p", {}, t.newTicket),
    el("img", { class: "ticket-qr", id: `${prefix}-qr`, alt: `QR code of ticket ${ticket.id}`, src: URL.createObjectURL(png) }),
  ];
}

export async function merchScreen() {
  const stop = new AbortController();
  screen.leave = () => stop.abort();
  const cart = new Map(); // sku -> {name, qty, drop}
  let drop = null;
  let hold = null;
  const buyer = el("input", { id: "buyer", autocomplete: "off" });
  const list = el("div", { id: "products" });
  const cartBox = el("div", { id: "cart" });
  const out = el("div", { id: "merch-out" });
  show(el("section", {}, el("h2", {}, t.merchTitle), el("label", { for: "buyer" }, t.buyer), buyer, list,
    el("h3", {}, t.cart), cartBox, out));

  const renderCart = () => {
    if (!cart.size) return cartBox.replaceChildren(el("p", {}, t.cartEmpty));
    const rows = [...cart.entries()].map(([sku, c]) => el("li", {}, `${c.qty} × ${c.name}`));
    const holdButton = el("button", { type: "button", class: "primary", id: "hold", onclick: placeHold }, t.hold);
    cartBox.replaceChildren(el("ul", {}, ...rows), hold ? "" : holdButton);
  };
  const renderDrops = async () => {
    const { drops } = await api("GET", "/api/v1/drops");
    list.replaceChildren(...drops.filter((d) => d.phase === "live").map((d) =>
      el("div", { class: "drop" }, el("h3", {}, d.name), ...d.products.map((p) => {
        const name = p.variant ? `${p.name} (${p.variant})` : p.name;
        return el("button", {
          type: "button", class: "product", disabled: p.available <= 0 || !!hold,
          "aria-label": t.add(name),
          onclick: () => {
            if (drop && drop !== d.id) cart.clear();
            drop = d.id;
            const c = cart.get(p.sku) || { name, qty: 0 };
            c.qty += 1;
            cart.set(p.sku, c);
            renderCart();
          },
        }, `${name} · ${money(p.price_minor, d.currency)} · ${p.available} ${t.available}`);
      }))));
  };
  async function placeHold() {
    try {
      const items = [...cart.entries()].map(([sku, c]) => ({ sku, qty: c.qty }));
      const body = { items, nonce: nonce() };
      if (buyer.value.trim()) body.attendee_code = buyer.value.trim();
      hold = await api("POST", `/api/v1/drops/${drop}/holds`, body);
      renderCart();
      renderDrops().catch(() => {});
      const total = money(hold.totals.total_minor, hold.currency);
      const given = el("input", { id: "cash", inputmode: "decimal", autocomplete: "off" });
      const left = el("p", { id: "hold-left", role: "timer" });
      const tick = () => {
        const secs = Math.max(0, Math.round((Date.parse(hold.expires_at) - Date.now()) / 1000));
        left.textContent = secs ? t.heldFor(secs) : t.holdEnded;
      };
      tick();
      const timer = setInterval(tick, 1000);
      stop.signal.addEventListener("abort", () => clearInterval(timer));
      const reference = el("input", { id: "card-ref", autocomplete: "off" });
      const approver = el("input", { id: "approver-pin", type: "password", inputmode: "numeric", autocomplete: "off" });
      const bossHere = state.who.role === "supervisor" || state.who.role === "admin";
      const pay = async (tender) => {
        try {
          const order = await api("POST", `/api/v1/holds/${hold.id}/checkout`, { nonce: nonce(), tender });
          clearInterval(timer);
          const text = await fetch(order.receipt_text, { headers: { authorization: `Bearer ${state.token}` } }).then((r) => r.text());
          announce(t.change(money(order.change_minor, order.currency)));
          const receipt = el("section", { class: "receipt" },
            el("p", { class: "big", id: "change" }, t.change(money(order.change_minor, order.currency))),
            el("h3", {}, t.receipt), el("pre", { id: "receipt" }, text));
          receipt.append(printStatus(order.order_id, stop.signal));
          if (bossHere) receipt.append(closeOrderForm(order.order_id, () => renderDrops().catch(() => {})));
          receipt.append(el("button", { type: "button", class: "primary", onclick: () => merchScreen() }, t.newSale));
          out.replaceChildren(receipt);
        } catch (e) {
          if (e.status === 401) return screen.signIn(t.sessionExpired);
          out.querySelector(".error")?.remove();
          out.append(errorBox(e));
        }
      };
      out.replaceChildren(
        el("p", { class: "big", id: "total" }, total), left,
        el("form", {
          onsubmit: (ev) => {
            ev.preventDefault();
            pay({ kind: "cash", given_minor: minor(given.value) });
          },
        }, el("label", { for: "cash" }, t.cashGiven), given,
          el("button", { type: "submit", class: "primary", id: "pay-cash" }, t.payCash)),
        el("form", {
          onsubmit: (ev) => {
            ev.preventDefault();
            pay({ kind: "card", reference: reference.value.trim() });
          },
        }, el("label", { for: "card-ref" }, t.cardReference), reference,
          el("button", { type: "submit", id: "pay-card" }, t.payCard)),
        el("form", {
          onsubmit: (ev) => {
            ev.preventDefault();
            // A supervisor approves by being signed in; others need one's PIN.
            pay(bossHere ? { kind: "comp" } : { kind: "comp", approver_pin: approver.value });
          },
        }, bossHere ? "" : el("label", { for: "approver-pin" }, t.approverPin), bossHere ? "" : approver,
          el("button", { type: "submit", id: "pay-comp" }, t.payComp)));
    } catch (e) {
      if (e.status === 401) return screen.signIn(t.sessionExpired);
      hold = null;
      out.replaceChildren(errorBox(e));
    }
  }
  // A walk-up ticket, paid cash, its QR code on screen.
  const tiers = (state.event && state.event.tiers) || [];
  const tier = el("select", { id: "tier" }, ...tiers.map((x) => el("option", { value: x.id }, `${x.name} · ${money(x.price_minor, state.event.event.currency)}`)));
  const referral = el("input", { id: "referral", autocomplete: "off" });
  const holderName = el("input", { id: "holder-name", autocomplete: "off" });
  const walkCash = el("input", { id: "walkup-cash", inputmode: "decimal", autocomplete: "off" });
  main.querySelector("section").append(ticketForm("walkup", "/api/v1/walkups", t.walkupTitle, [
    el("label", { for: "tier" }, t.tier), tier,
    el("label", { for: "referral" }, t.referral), referral,
    el("label", { for: "holder-name" }, t.holderName), holderName,
    el("label", { for: "walkup-cash" }, t.walkupCash), walkCash,
    el("button", { type: "submit", class: "primary", id: "sell-ticket" }, t.sellTicket)], () => {
    const body = { tier: tier.value, nonce: nonce(), tender: { kind: "cash", given_minor: minor(walkCash.value) } };
    if (referral.value.trim()) body.referral_code = referral.value.trim();
    if (holderName.value.trim()) body.holder = holderName.value.trim();
    return body;
  }));
  // A scholarship seat by code (free, or discounted and paid cash).
  const claimCode = el("input", { id: "claim-code", autocomplete: "off", autocapitalize: "characters" });
  const claimHolder = el("input", { id: "claim-holder", autocomplete: "off" });
  const claimCash = el("input", { id: "claim-cash", inputmode: "decimal", autocomplete: "off" });
  main.querySelector("section").append(ticketForm("claim", "/api/v1/scholarships/claims", t.claimTitle, [
    el("label", { for: "claim-code" }, t.claimCode), claimCode,
    el("label", { for: "claim-holder" }, t.claimHolder), claimHolder,
    el("label", { for: "claim-cash" }, t.claimCash), claimCash,
    el("button", { type: "submit", class: "primary", id: "claim-seat" }, t.claimSeat)], () => {
    const body = { code: claimCode.value.trim(), nonce: nonce() };
    if (claimHolder.value.trim()) body.holder = claimHolder.value.trim();
    if (claimCash.value.trim()) body.tender = { kind: "cash", given_minor: minor(claimCash.value) };
    return body;
  }));
  if (state.who.role === "supervisor" || state.who.role === "admin") {
    main.querySelector("section").append(findOrderForm(() => renderDrops().catch(() => {})));
  }
  renderCart();
  try {
    await renderDrops();
  } catch (e) {
    out.replaceChildren(errorBox(e));
  }
  // Live stock: the drop feed (every change, from any till).
  events("/api/v1/drops/feed", stop.signal, (name) => {
    if (name === "drops") renderDrops().catch(() => {});
  }).catch(() => {});
}

/** A form that sells or claims a ticket (POST `path` with `body()`), then
 * shows the change and the new ticket's QR code under it. */
function ticketForm(prefix, path, title, fields, body) {
  const out = el("div", { id: `${prefix}-out` });
  return el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const order = await api("POST", path, body());
        out.replaceChildren(...(await ticketView(order, prefix)));
      } catch (e) {
        if (e.status === 401) return screen.signIn(t.sessionExpired);
        out.replaceChildren(errorBox(e));
      }
    },
  }, el("h3", {}, title), ...fields, out);
}

/** The receipt's print job, followed until it prints: "printed", or
 * why it waits (out of paper, no printer), with a reprint button. */
function printStatus(orderId, signal) {
  const line = el("p", { class: "print-state", id: "print-state", role: "status" }, t.printWaiting(""));
  const again = el("button", {
    type: "button", id: "reprint",
    onclick: async () => {
      try {
        await api("POST", `/api/v1/orders/${orderId}/print`);
        follow();
      } catch (e) {
        line.replaceChildren(errorBox(e));
      }
    },
  }, t.reprint);
  let timer = null;
  const follow = () => {
    clearTimeout(timer);
    const poll = async () => {
      const [{ jobs }, { devices }] = await Promise.all([
        api("GET", "/api/v1/print-jobs"),
        api("GET", "/api/v1/devices"),
      ]);
      const job = jobs.find((j) => j.order_id === orderId);
      const printers = devices.filter((d) => d.kind === "printer");
      const why = printers.map((d) => d.detail).find(Boolean) || (printers.length ? "" : t.noPrinter);
      if (!job) line.textContent = t.printNone;
      else if (job.status === "done") line.textContent = t.printed(job.printer || "");
      else if (job.status === "skipped") line.textContent = t.printSkipped;
      else line.textContent = t.printWaiting(job.last_error || why);
      if (!job || job.status === "pending") timer = setTimeout(() => poll().catch(() => {}), 1000);
    };
    poll().catch(() => {});
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  follow();
  return el("div", {}, line, again);
}

/** A supervisor voids (a mistake, same shift) or refunds (money back) an
 * order, saying why; its items go back into stock. */
function closeOrderForm(orderId, onDone) {
  const reason = el("input", { id: `close-reason-${orderId}`, autocomplete: "off", required: true });
  const done = el("div");
  const close = async (kind, admitted_confirmed = false) => {
    try {
      await api("POST", `/api/v1/orders/${orderId}/${kind}`, { reason: reason.value, admitted_confirmed });
      done.replaceChildren(el("p", { id: kind === "void" ? "voided" : "refunded", role: "status" }, kind === "void" ? t.voided : t.refunded));
      onDone();
    } catch (e) {
      // A ticket of it was admitted: the supervisor says yes explicitly.
      if (e.code === "ticket_admitted" && !admitted_confirmed && window.confirm(e.message)) return close(kind, true);
      done.replaceChildren(errorBox(e));
    }
  };
  return el("form", { onsubmit: (ev) => ev.preventDefault() },
    el("label", { for: `close-reason-${orderId}` }, t.voidReason), reason,
    el("button", { type: "button", onclick: () => close("void") }, t.voidOrder),
    el("button", { type: "button", onclick: () => close("refund") }, t.refundOrder), done);
}

/** For supervisors: find an earlier order by its number and refund it. */
function findOrderForm(onDone) {
  const number = el("input", { id: "order-number", autocomplete: "off" });
  const found = el("div", { id: "order-found" });
  return el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const o = await api("GET", `/api/v1/orders/${encodeURIComponent(number.value.trim())}`);
        found.replaceChildren(
          el("p", {}, t.orderLine(o.order_id, money(o.total_minor, o.currency), o.status)),
          o.status === "paid" ? closeOrderForm(o.order_id, onDone) : "");
      } catch (e) {
        found.replaceChildren(errorBox(e));
      }
    },
  }, el("h3", {}, t.findOrder), el("label", { for: "order-number" }, t.orderNumber), number,
    el("button", { type: "submit" }, t.find), found);
}
