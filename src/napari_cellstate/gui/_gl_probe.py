"""Make an OpenGL canvas the way napari does and print the renderer (run as a script)."""

from __future__ import annotations


def main() -> None:
    """Create a Qt application and a vispy canvas, draw once, print the GL renderer."""
    import qtpy
    from qtpy.QtWidgets import QApplication
    from vispy import app, gloo
    from vispy.scene import SceneCanvas

    qt_app = QApplication.instance() or QApplication([])
    app.use_app(qtpy.API_NAME.lower())
    canvas = SceneCanvas(size=(32, 32), show=True)
    canvas.render()
    renderer = gloo.gl.glGetParameter(gloo.gl.GL_RENDERER)
    version = gloo.gl.glGetParameter(gloo.gl.GL_VERSION)
    canvas.close()
    qt_app.processEvents()
    print(f"canvas made: {renderer}, OpenGL {version}")


if __name__ == "__main__":
    main()
