// What the staff app's pages find on `window` that TypeScript's DOM
// library does not describe: the vendored decoders and the tus client,
// loaded as classic scripts, and the camera's torch.
interface Window {
  /** jsQR (web/vendor/jsQR.js): a QR code in RGBA pixels, or null. */
  jsQR?: (data: Uint8ClampedArray, width: number, height: number, options?: object) => { data: string } | null;
  /** tus-js-client (web/vendor/tus.min.js). */
  tus?: any;
}
interface MediaTrackCapabilities {
  torch?: boolean;
}
interface MediaTrackConstraintSet {
  torch?: boolean;
}
