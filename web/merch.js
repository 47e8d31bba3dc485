// @ts-check
// The merch stand, in three tabs: a sale from the live drops (the buyer's
// ticket scanned with the camera for drops with a limit per guest, a held
// cart, quick cash buttons, the change large, the receipt and its print
// status), walk-up tickets, and scholarship claims; a supervisor's void
// and refund. Money in the event's currency, formatted for the staff
// member's language.
import { t } from "./strings.js";
import { announce, digits, el, errorBox, may, minor, money, nonce, screen, show, state } from "./ui.js";
import * as api from "./api.js";
import { openCamera, qrReader } from "./camera.js";

/** The change and the new ticket's QR code (fetched with the token). */
async function ticketView(order, prefix) {
  const ticket = order.tickets[0];
  const png = await api.ticketQr(ticket.qr);
  const change = t.change(money(order.change_minor, order.currency));
  announce(change);
  return [
    el("p", { class: "change-big", id: `${prefix}-change` }, change),
    el("p", {}, t.newTicket),
    el("img", { class: "ticket-qr", id: `${prefix}-qr`, alt: t.ticketQr(ticket.id), src: URL.createObjectURL(png) }),
  ];
}

/** Cash amounts a buyer is likely to hand over for `total` (minor units
 * of `currency`): the exact sum, then the next three notes above it. */
export function quickCash(total, currency) {
  const unit = 10 ** digits(currency);
  const notes = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000].map((n) => n * unit);
  return [total, ...notes.filter((n) => n > total).slice(0, 3)];
}

/** The camera, opened under `field` to read a ticket's QR code into it. */
function scanInto(field, signal) {
  const video = el("video", { playsinline: true, muted: true, "aria-label": t.cameraView });
  const finder = el("div", { class: "viewfinder", hidden: true }, video, el("div", { class: "aim", "aria-hidden": "true" }));
  let stop = () => {};
  const close = () => {
    stop();
    stop = () => {};
    if (video.srcObject) video.srcObject.getTracks().forEach((tr) => tr.stop());
    video.srcObject = null;
    finder.hidden = true;
    button.textContent = t.scanBuyer;
  };
  const button = el("button", { type: "button", id: "scan-buyer", onclick: async () => {
    if (!finder.hidden) return close();
    try {
      finder.hidden = false;
      button.textContent = t.cameraStop;
      await openCamera(video);
      stop = qrReader(video, (text) => {
        field.value = text.trim();
        field.dispatchEvent(new Event("input"));
        announce(t.buyerScanned);
        close();
      });
    } catch {
      close();
      field.after(el("p", { role: "alert" }, t.cameraUnavailable));
    }
  } }, t.scanBuyer);
  signal.addEventListener("abort", close);
  return [button, finder];
}

/** Tabs over panels: one shown at a time, the choice kept per device. */
function tabs(list) {
  const bar = el("div", { role: "tablist", class: "tabs", "aria-label": t.merchTitle });
  const saved = localStorage.getItem("venuebox.merchTab");
  const select = (id) => {
    for (const [tid, , panel, tab] of list) {
      const on = tid === id;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      panel.hidden = !on;
    }
    localStorage.setItem("venuebox.merchTab", id);
  };
  for (const item of list) {
    const [id, label, panel] = item;
    const tab = el("button", { type: "button", role: "tab", id: `tab-${id}`, "aria-controls": `panel-${id}`, onclick: () => select(id) }, label);
    panel.id = `panel-${id}`;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", `tab-${id}`);
    item.push(tab);
    bar.append(tab);
  }
  select(list.some(([id]) => id === saved) ? saved : list[0][0]);
  return [bar, ...list.map(([, , panel]) => panel)];
}

export async function merchScreen() {
  const stop = new AbortController();
  screen.leave = () => stop.abort();
  const cart = new Map(); // sku -> {name, qty}
  let drop = null;
  let hold = null;
  let holdTimer = null;
  const buyer = el("input", { id: "buyer", autocomplete: "off" });
  const list = el("div", { id: "products" });
  const cartBox = el("div", { id: "cart" });
  const out = el("div", { id: "merch-out" });
  const boss = may("supervise");

  const renderCart = () => {
    if (!cart.size) return cartBox.replaceChildren(el("p", {}, t.cartEmpty));
    const rows = [...cart.entries()].map(([, c]) => el("li", {}, `${c.qty} × ${c.name}`));
    const holdButton = el("button", { type: "button", class: "primary", id: "hold", onclick: placeHold }, t.hold);
    const clear = el("button", { type: "button", id: "clear-cart", onclick: () => { cart.clear(); drop = null; renderCart(); } }, t.clearCart);
    cartBox.replaceChildren(el("ul", {}, ...rows), hold ? "" : holdButton, hold ? "" : clear);
  };
  const renderDrops = async () => {
    const { drops } = await api.drops();
    list.replaceChildren(...drops.filter((d) => d.phase === "live").map((d) =>
      el("div", { class: "drop" }, el("h3", {}, d.name), ...d.products.map((p) => {
        const name = p.variant ? `${p.name} (${p.variant})` : p.name;
        return el("button", {
          type: "button", class: "product", disabled: p.available <= 0 || !!hold,
          onclick: () => {
            if (drop && drop !== d.id) cart.clear();
            drop = d.id;
            const c = cart.get(p.sku) || { name, qty: 0 };
            c.qty += 1;
            cart.set(p.sku, c);
            renderCart();
          },
        }, `${t.add(name)} · ${money(p.price_minor, d.currency)} · ${p.available} ${t.available}`);
      }))));
  };
  /** After a payment: the cart is empty and the products sell again. */
  const saleDone = () => {
    clearInterval(holdTimer);
    cart.clear();
    drop = null;
    hold = null;
    buyer.value = "";
    renderCart();
    renderDrops().catch(() => {});
  };
  async function placeHold() {
    try {
      const items = [...cart.entries()].map(([sku, c]) => ({ sku, qty: c.qty }));
      const body = { items, nonce: nonce() };
      if (buyer.value.trim()) body.attendee_code = buyer.value.trim();
      hold = await api.hold(drop, body);
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
      holdTimer = setInterval(tick, 1000);
      stop.signal.addEventListener("abort", () => clearInterval(holdTimer));
      const reference = el("input", { id: "card-ref", autocomplete: "off" });
      const approver = el("input", { id: "approver-pin", type: "password", inputmode: "numeric", autocomplete: "off" });
      const pay = async (tender) => {
        try {
          const order = await api.checkout(hold.id, nonce(), tender);
          saleDone();
          const text = await api.receiptText(order.receipt_text);
          const change = t.change(money(order.change_minor, order.currency));
          announce(change);
          const receipt = el("section", { class: "receipt" },
            el("p", { class: "change-big", id: "change" }, change),
            el("h3", {}, t.receipt), el("pre", { id: "receipt" }, text));
          receipt.append(printStatus(order.order_id, stop.signal));
          if (boss) receipt.append(closeOrderForm(order.order_id, () => renderDrops().catch(() => {})));
          receipt.append(el("button", { type: "button", class: "primary", onclick: () => merchScreen() }, t.newSale));
          out.replaceChildren(receipt);
        } catch (e) {
          if (e.status === 401) return screen.signIn(t.sessionExpired);
          out.querySelector(".error")?.remove();
          out.append(errorBox(e));
        }
      };
      const cur = hold.currency;
      const quick = el("div", { class: "quick-cash", role: "group", "aria-label": t.quickCash },
        ...quickCash(hold.totals.total_minor, cur).map((amount, i) => el("button", {
          type: "button", class: i ? "" : "primary", "aria-label": i ? t.cashNote(money(amount, cur)) : t.cashExact(money(amount, cur)),
          onclick: () => pay({ kind: "cash", given_minor: amount }),
        }, i ? money(amount, cur) : t.exact)));
      out.replaceChildren(
        el("p", { class: "big", id: "total" }, total), left,
        quick,
        el("form", {
          onsubmit: (ev) => {
            ev.preventDefault();
            pay({ kind: "cash", given_minor: minor(given.value, cur) });
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
            pay(boss ? { kind: "comp" } : { kind: "comp", approver_pin: approver.value });
          },
        }, boss ? "" : el("label", { for: "approver-pin" }, t.approverPin), boss ? "" : approver,
          el("button", { type: "submit", id: "pay-comp" }, t.payComp)));
    } catch (e) {
      if (e.status === 401) return screen.signIn(t.sessionExpired);
      hold = null;
      renderCart();
      out.replaceChildren(errorBox(e));
    }
  }
  const sale = el("section", {}, el("label", { for: "buyer" }, t.buyer), buyer, ...scanInto(buyer, stop.signal),
    list, el("h3", {}, t.cart), cartBox, out);
  if (boss) sale.append(findOrderForm(() => renderDrops().catch(() => {})));
  // A walk-up ticket, paid cash, its QR code on screen.
  const currency = state.event.event.currency;
  const tiers = (state.event && state.event.tiers) || [];
  const tier = el("select", { id: "tier" }, ...tiers.map((x) => el("option", { value: x.id }, `${x.name} · ${money(x.price_minor, currency)}`)));
  const referral = el("input", { id: "referral", autocomplete: "off" });
  const holderName = el("input", { id: "holder-name", autocomplete: "off" });
  const walkCash = el("input", { id: "walkup-cash", inputmode: "decimal", autocomplete: "off" });
  const walkup = el("section", {}, ticketForm("walkup", api.walkup, t.walkupTitle, [
    el("label", { for: "tier" }, t.tier), tier,
    el("label", { for: "referral" }, t.referral), referral,
    el("label", { for: "holder-name" }, t.holderName), holderName,
    el("label", { for: "walkup-cash" }, t.walkupCash), walkCash,
    el("button", { type: "submit", class: "primary", id: "sell-ticket" }, t.sellTicket)], () => {
    const body = { tier: tier.value, nonce: nonce(), tender: { kind: "cash", given_minor: minor(walkCash.value, currency) } };
    if (referral.value.trim()) body.referral_code = referral.value.trim();
    if (holderName.value.trim()) body.holder = holderName.value.trim();
    return body;
  }));
  // A scholarship seat by code (free, or discounted and paid cash).
  const claimCode = el("input", { id: "claim-code", autocomplete: "off", autocapitalize: "characters" });
  const claimHolder = el("input", { id: "claim-holder", autocomplete: "off" });
  const claimCash = el("input", { id: "claim-cash", inputmode: "decimal", autocomplete: "off" });
  const claim = el("section", {}, ticketForm("claim", api.claimScholarship, t.claimTitle, [
    el("label", { for: "claim-code" }, t.claimCode), claimCode,
    el("label", { for: "claim-holder" }, t.claimHolder), claimHolder,
    el("label", { for: "claim-cash" }, t.claimCash), claimCash,
    el("button", { type: "submit", class: "primary", id: "claim-seat" }, t.claimSeat)], () => {
    const body = { code: claimCode.value.trim(), nonce: nonce() };
    if (claimHolder.value.trim()) body.holder = claimHolder.value.trim();
    if (claimCash.value.trim()) body.tender = { kind: "cash", given_minor: minor(claimCash.value, currency) };
    return body;
  }));
  show(el("section", {}, el("h2", {}, t.merchTitle),
    ...tabs([["sale", t.tabSale, sale], ["walkup", t.tabWalkup, walkup], ["claim", t.tabClaim, claim]])));
  renderCart();
  try {
    await renderDrops();
  } catch (e) {
    out.replaceChildren(errorBox(e));
  }
  // Live stock: the drop feed (every change, from any till).
  api.dropsFeed(stop.signal, (name) => {
    if (name === "drops") renderDrops().catch(() => {});
  }).catch(() => {});
}

/** A form that sells or claims a ticket (POST `path` with `body()`), then
 * shows the change and the new ticket's QR code under it. */
function ticketForm(prefix, send, title, fields, body) {
  const out = el("div", { id: `${prefix}-out` });
  return el("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const order = await send(body());
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
        await api.reprint(orderId);
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
        api.printJobs(),
        api.devices(),
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
      await api.closeOrder(orderId, kind, { reason: reason.value, admitted_confirmed });
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
        const o = await api.order(number.value.trim());
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
